"""`vaekit index | search | detect | latent-map | probe`: what a model's latent space is good for."""
from __future__ import annotations

import json
from pathlib import Path

from vaekit.cli.values import COUNT, SEED, number


def register(sub) -> None:
    index = sub.add_parser("index", help="embed a collection (posterior means) into a searchable index")
    index.add_argument("run")
    _data_arguments(index, split="train")
    index.add_argument("-o", "--out", required=True, help="index folder")
    index.add_argument("--append", action="store_true", help="add the images to an existing index")
    index.add_argument("--backend", choices=("exact", "faiss-hnsw"),
                       help="search backend for a new index (default: exact; faiss-hnsw needs the faiss extra)")
    index.set_defaults(func=cmd_index, out_kind="folder")

    search = sub.add_parser("search", help="the nearest indexed images to query images, as JSON")
    search.add_argument("index")
    search.add_argument("queries", nargs="+", metavar="QUERY", help="query image files")
    search.add_argument("-k", type=COUNT, default=10, help="neighbours per query (default: 10)")
    search.add_argument("-o", "--out", help="also write a grid: each query, then its neighbours (PNG)")
    search.add_argument("--run", help="the run that built the index (default: the folder it names)")
    search.add_argument("--exact", action="store_true", help="search exactly even if the index is approximate")
    search.add_argument("--resize", action="store_true", help="resize queries of another size to the model's")
    search.set_defaults(func=cmd_search, out_kind="file")

    detect = sub.add_parser("detect", help="anomaly scores, a calibrated threshold and a report")
    detect.add_argument("run")
    _data_arguments(detect, split="test")
    detect.add_argument("--normal", help="held-out normal images for the threshold (dataset name or path; "
                                         "default: the run's own validation images)")
    detect.add_argument("--normal-split", default="test", choices=("train", "test"))
    detect.add_argument("--score", default="iwae", choices=("elbo", "iwae", "recon"),
                        help="negative ELBO, importance-weighted NLL or reconstruction NLL (default: iwae)")
    detect.add_argument("-k", type=COUNT, default=100, help="posterior samples per image (default: 100)")
    detect.add_argument("--fpr", type=number(above=0.0, below=1.0), default=0.05,
                        help="target false-positive rate (default: 0.05)")
    detect.add_argument("--seed", type=SEED, default=0)
    detect.add_argument("-o", "--out", required=True, help="report folder")
    detect.set_defaults(func=cmd_detect, out_kind="folder")

    latent_map = sub.add_parser("latent-map", help="2-D map of the latent space coloured by label (PNG)")
    latent_map.add_argument("run")
    _data_arguments(latent_map, split="test")
    latent_map.add_argument("--method", default="auto", choices=("auto", "pca", "tsne"),
                            help="projection above 2 latent dims (default: auto = the latents at 2 dims, else PCA)")
    latent_map.add_argument("--factor", help="for factor labels (sprites): the factor to colour by")
    latent_map.add_argument("--seed", type=SEED, default=0)
    latent_map.add_argument("-o", "--out", required=True, help="output image (PNG)")
    latent_map.set_defaults(func=cmd_latent_map, out_kind="file")

    probe = sub.add_parser("probe", help="linear-probe and k-NN accuracy of labels from the latents, as JSON")
    probe.add_argument("run")
    _data_arguments(probe, split=None)
    probe.add_argument("-k", type=COUNT, default=10, help="neighbours of the k-NN classifier (default: 10)")
    probe.add_argument("-o", "--out", help="also write the JSON to this file")
    probe.set_defaults(func=cmd_probe, out_kind="file")


def _data_arguments(parser, split: str | None) -> None:
    parser.add_argument("--data", help="dataset name or path (default: the run's training data)")
    parser.add_argument("--data-dir", help="folder holding existing IDX files")
    if split:
        parser.add_argument("--split", default=split, choices=("train", "test"), help=f"(default: {split})")
    parser.add_argument("--limit", type=COUNT, help="use only the first N images (of each split)")
    parser.add_argument("--batch-size", type=COUNT, default=500)
    parser.add_argument("--threads", type=COUNT, help="torch CPU threads")


def _load(run, args, split: str, name: str | None = None):
    """A dataset as the run's model sees it: its channels and image size, the first --limit images."""
    import torch

    from vaekit.data import DATASETS, load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    d = run.config.data
    name = name or args.data or d.data
    dataset = load_dataset(name, split, data_dir=args.data_dir or d.data_dir, image_size=d.image_size,
                           channels=run.model.image_shape[0], mirror=d.mirror)
    if args.limit:
        dataset.images = dataset.images[: args.limit]
        dataset.labels = dataset.labels[: args.limit] if dataset.labels is not None else None
        dataset.paths = dataset.paths[: args.limit] if dataset.paths else None
    run.model.check_images(dataset.images)
    source = {"data": name if name in DATASETS else str(Path(name).resolve()), "split": split,
              "data_dir": args.data_dir or d.data_dir, "image_size": d.image_size}
    return dataset, source


def cmd_index(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.errors import DataError
    from vaekit.tasks.retrieve import LatentIndex, add_dataset, build_index

    run = load_vae(args.run)
    out = Path(args.out)
    if args.append:
        index = LatentIndex.load(out)
        if args.backend and args.backend != index.backend_name:
            raise DataError(f"the index {out} uses the {index.backend_name} backend, not {args.backend}")
        dataset, source = _load(run, args, args.split)
        add_dataset(index, run, dataset, source, args.batch_size, progress=True)
    else:
        if out.exists():
            raise DataError(f"{out} already exists; pass --append to add images to it, or choose another --out")
        dataset, source = _load(run, args, args.split)
        index = build_index(run, dataset, source, args.backend or "exact", args.batch_size, progress=True)
    index.save(out)
    print(json.dumps({"index": str(out), "items": len(index), "added": len(dataset),
                      "latent_dim": index.embeddings.shape[1], "backend": index.backend_name}))


def cmd_search(args) -> None:
    import torch

    from vaekit.engine.checkpoint import load_vae
    from vaekit.imaging import save_grid
    from vaekit.tasks.retrieve import LatentIndex, check_same_model, embed, item_images, load_query

    index = LatentIndex.load(args.index, backend="exact" if args.exact else None)
    run = load_vae(args.run or index.run)
    check_same_model(index, run)
    queries = torch.stack([load_query(p, index.image_shape, args.resize) for p in args.queries])
    hits = index.search(embed(run.model, queries), args.k)
    result = {"index": args.index, "k": args.k, "backend": index.backend_name,
              "results": [{"query": q, "neighbours": [vars(h) for h in row]} for q, row in zip(args.queries, hits)]}
    if args.out:
        rows = [torch.cat([queries[i:i + 1], item_images(index, [h.index for h in row])]) for i, row in enumerate(hits)]
        save_grid(args.out, torch.cat(rows), nrow=1 + max(len(row) for row in hits))
    print(json.dumps(result, indent=2))


def cmd_detect(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.engine.trainer import prepare_data
    from vaekit.errors import DataError
    from vaekit.tasks.anomaly import anomaly_scores, calibrate_threshold, check_report_folder, write_report
    from vaekit.tasks.retrieve import item_names, label_list

    check_report_folder(Path(args.out))  # before the scoring, not after
    run = load_vae(args.run)
    dataset, source = _load(run, args, args.split)
    if args.normal:
        normal = _load(run, args, args.normal_split, name=args.normal)[0].images
    else:
        normal = prepare_data(run.config, progress=False).val
        if len(normal) == 0:
            raise DataError(f"{args.run} kept no validation images (val_fraction 0); pass --normal with held-out "
                            "normal images")
    options = {"score": args.score, "k": args.k, "batch_size": args.batch_size, "seed": args.seed, "progress": True}
    scores = anomaly_scores(run.model, dataset.images, **options)
    normal_scores = anomaly_scores(run.model, normal, **options)
    threshold = calibrate_threshold(normal_scores, args.fpr)
    settings = {"run": str(args.run), "data": source["data"], "split": args.split,
                "normal": args.normal or "the run's validation images", "score": args.score,
                "k": None if args.score == "recon" else args.k, "seed": args.seed, "target_fpr": args.fpr}
    summary = write_report(args.out, scores, normal_scores, threshold, dataset.images,
                           item_names(dataset, source), label_list(dataset), settings)
    print(json.dumps({key: summary[key] for key in ("score", "threshold_nats", "n_images", "n_flagged",
                                                    "normal_fpr")} | {"report": args.out}, indent=2))


def cmd_latent_map(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.errors import DataError
    from vaekit.tasks.explore import plot_latent_map, project_2d
    from vaekit.tasks.retrieve import embed

    run = load_vae(args.run)
    dataset, source = _load(run, args, args.split)
    labels, label_name = dataset.labels, "label"
    if labels is not None and labels.dim() == 2:
        names = list(dataset.factor_names or (f"factor{i}" for i in range(labels.shape[1])))
        label_name = args.factor or names[0]
        if label_name not in names:
            raise DataError(f"unknown factor {label_name!r}; {source['data']} has {', '.join(names)}")
        labels = labels[:, names.index(label_name)]
    elif args.factor:
        raise DataError(f"--factor needs factor labels, and {source['data']} has none")
    coords, method = project_2d(embed(run.model, dataset.images, args.batch_size, progress=True), args.method,
                                args.seed)
    title = f"{Path(args.run).name}: {Path(source['data']).name} ({args.split}), {len(coords)} images"
    axis = {"identity": "z", "pca": "PC", "tsne": "t-SNE"}[method]
    print(plot_latent_map(coords, None if labels is None else labels.numpy(), args.out, title, label_name, axis))


def cmd_probe(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.engine.files import write_json
    from vaekit.errors import DataError
    from vaekit.tasks.probe import probe
    from vaekit.tasks.retrieve import embed

    run = load_vae(args.run)
    train, source = _load(run, args, "train")
    test, _ = _load(run, args, "test")
    if train.labels is None or test.labels is None:
        raise DataError(f"{source['data']} has no labels to probe for")
    if args.k > len(train):  # before embedding, not after
        raise DataError(f"-k {args.k} is more than the {len(train)} training images the k-NN classifier has")
    z_train, z_test = (embed(run.model, d.images, args.batch_size, progress=True) for d in (train, test))
    result = {"data": source["data"], **probe(z_train, train.labels, z_test, test.labels, args.k, train.factor_names)}
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
