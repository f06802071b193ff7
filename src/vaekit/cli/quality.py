"""`vaekit quality`: how real and how sharp a run's samples look (FD, sharpness, optional FID), as JSON."""
from __future__ import annotations

import json
from pathlib import Path

from vaekit.cli.values import COUNT, SEED, whole


def register(sub) -> None:
    q = sub.add_parser("quality", help="sample quality of a run: Fréchet distance in the features of a classifier "
                       "vaekit trains on the dataset (cached), sharpness, and Inception FID if you have its weights")
    q.add_argument("run")
    q.add_argument("--data", help="dataset name or path (default: the run's training data)")
    q.add_argument("--data-dir", help="folder holding existing IDX files")
    q.add_argument("-n", type=whole(2), default=5000, help="samples and real test images compared (default: 5000)")
    q.add_argument("--seed", type=SEED, default=0, help="seed for the samples and the classifier (default: 0)")
    q.add_argument("--classifier-dir", help="where trained classifiers are cached (default: $VAEKIT_CLASSIFIERS "
                   "or ~/.cache/vaekit/classifiers)")
    q.add_argument("--inception", metavar="PATH", help="the FID Inception network as TorchScript "
                   "(inception-2015-12-05.pt) to add the usual FID (default: $VAEKIT_INCEPTION if set)")
    q.add_argument("--threads", type=COUNT, help="torch CPU threads")
    q.add_argument("-o", "--out", help="also write the JSON to this file")
    q.set_defaults(func=cmd_quality, out_kind="file")


def cmd_quality(args) -> None:
    import os

    import torch

    from vaekit.engine.checkpoint import load_vae
    from vaekit.data import load_dataset
    from vaekit.engine.batches import split_validation
    from vaekit.engine.files import write_json
    from vaekit.errors import VaekitError
    from vaekit.quality import ClassifierSpec, feature_classifier, load_inception, sample_quality

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.classifier_dir and Path(args.classifier_dir).exists() and not Path(args.classifier_dir).is_dir():
        raise VaekitError(f"--classifier-dir {args.classifier_dir} is a file; give a folder")  # before training it
    inception = args.inception or os.environ.get("VAEKIT_INCEPTION")
    if inception:
        load_inception(inception)  # fail before the slow part
    run = load_vae(args.run)
    d = run.config.data
    name = args.data or d.data
    options = dict(data_dir=args.data_dir or d.data_dir, image_size=d.image_size, channels=run.model.image_shape[0])
    train = load_dataset(name, "train", **options)
    test = load_dataset(name, "test", **options)
    train_images, labels, real = train.images, train.labels, test.images
    if torch.equal(train.images, test.images):  # one split only (an array file, an unsplit folder):
        keep, held_out = split_validation(torch.arange(len(train)), d.val_fraction or 0.1)  # the run's held-out part
        train_images, real = train.images[keep], train.images[held_out]
        labels = train.labels[keep] if train.labels is not None else None
    run.model.check_images(real[:1].float())
    if len(real) < 2:  # before the classifier is trained
        raise VaekitError(f"the {'test split' if real is test.images else 'held-out part of the data'} has "
                          f"{len(real)} image(s); the Fréchet distance needs at least 2")
    classifier = feature_classifier(train_images, labels, name, cache_dir=args.classifier_dir,
                                    spec=ClassifierSpec(seed=args.seed))
    result = {"data": name, "real": "test split" if real is test.images else "held-out part of the data",
              **sample_quality(run.model, real, classifier, n=args.n, seed=args.seed,
                               reference=train_images[-args.n:], inception=inception)}
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
