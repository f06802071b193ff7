"""`vaekit eval`: likelihood metrics of a run on a dataset split, as JSON."""
from __future__ import annotations

import json
from pathlib import Path

from vaekit.cli.values import COUNT, SEED, whole


def register(sub) -> None:
    ev = sub.add_parser("eval", help="negative ELBO, IWAE NLL and bits/dim on a dataset split, as JSON")
    ev.add_argument("run")
    ev.add_argument("--data", help="dataset name or path (default: the run's training data)")
    ev.add_argument("--data-dir", help="folder holding existing IDX files")
    ev.add_argument("--split", default="test", choices=("train", "test"))
    ev.add_argument("--iwae", type=whole(0), default=0, metavar="K",
                    help="importance samples for the IWAE NLL (0: skip)")
    ev.add_argument("--batch-size", type=COUNT, default=500)
    ev.add_argument("--limit", type=COUNT, help="evaluate only the first N images")
    ev.add_argument("--no-binarize", action="store_true",
                    help="score grey levels as they are (default: binarize once with seed 0 for unconditional "
                         "Bernoulli models, as the run's report does; a restoration model sees the grey images)")
    ev.add_argument("--seed", type=SEED, default=0, help="seed for the posterior samples")
    ev.add_argument("--probe", action="store_true",
                    help="also fit a linear probe and a k-NN classifier on the train split's latents and report "
                         "their accuracy on this split's labels (what `vaekit probe` measures)")
    ev.add_argument("--probe-k", type=COUNT, default=10, help="neighbours of the probe's k-NN classifier (default: 10)")
    ev.add_argument("--partial", metavar="FILE",
                    help="keep the finished batches' per-image scores in this JSON file and, when it exists, "
                         "continue after them: an IWAE evaluation with k in the thousands takes hours on a CPU and "
                         "can be stopped and resumed (it draws the samples an uninterrupted run would)")
    ev.add_argument("--threads", type=COUNT, help="torch CPU threads")
    ev.add_argument("-o", "--out", help="also write the JSON to this file")
    ev.set_defaults(func=cmd_eval, out_kind="file")


def cmd_eval(args) -> None:
    import torch

    from vaekit.config import scored_binarized
    from vaekit.engine.checkpoint import load_vae
    from vaekit.data import load_dataset
    from vaekit.engine.files import write_json
    from vaekit.engine.partial_eval import evaluation_key, resume_partial
    from vaekit.errors import VaekitError
    from vaekit.metrics import evaluate
    from vaekit.report import prepare_eval_images

    if args.partial and args.out and Path(args.partial).resolve() == Path(args.out).resolve():
        raise VaekitError("--partial and -o name the same file; the partial scores need their own")
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_vae(args.run)
    d = run.config.data
    dataset = load_dataset(args.data or d.data, args.split, data_dir=args.data_dir or d.data_dir,
                           image_size=d.image_size, channels=run.model.image_shape[0])
    images = dataset.images[: args.limit] if args.limit else dataset.images
    run.model.check_images(images)
    binarize = scored_binarized(run.config) and not args.no_binarize
    images = prepare_eval_images(images, binarize)
    generator = torch.Generator().manual_seed(args.seed)
    done = on_batch = None
    if args.partial:
        key = evaluation_key(run, images, args.iwae, args.batch_size, args.seed)
        done, on_batch = resume_partial(args.partial, key, generator)
    result = {"data": args.data or d.data, "split": args.split, "binarized": binarize,
              **evaluate(run.model, images, iwae_k=args.iwae, batch_size=args.batch_size, generator=generator,
                         done=done, on_batch=on_batch)}
    if args.probe:
        result["probe"] = probe_result(run, dataset, args)
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))


def probe_result(run, dataset, args) -> dict:
    """Probe accuracy on `dataset` (the evaluated split) of classifiers fit on the train split's latents."""
    from vaekit.data import load_dataset
    from vaekit.errors import DataError
    from vaekit.tasks.probe import probe
    from vaekit.tasks.retrieve import embed

    d = run.config.data
    train = load_dataset(args.data or d.data, "train", data_dir=args.data_dir or d.data_dir,
                         image_size=d.image_size, channels=run.model.image_shape[0])
    if train.labels is None or dataset.labels is None:
        raise DataError(f"{args.data or d.data} has no labels to probe for")
    if args.probe_k > len(train):  # before embedding, not after
        raise DataError(f"--probe-k {args.probe_k} is more than the {len(train)} training images the k-NN "
                        "classifier has")
    test_images, test_labels = dataset.images[: args.limit], dataset.labels[: args.limit]
    z_train, z_test = (embed(run.model, images, args.batch_size, progress=True)
                       for images in (train.images, test_images))
    return probe(z_train, train.labels, z_test, test_labels, args.probe_k, train.factor_names)
