"""A long evaluation's finished batches on disk, so that `vaekit eval --partial` can stop and resume.

IWAE at k=5000 over a test set takes hours on a CPU. The file holds the per-image scores and
the generator's state after the last finished batch, so a resumed evaluation draws the same
samples as an uninterrupted one and, with the same number of threads, reaches the same result. A
key (hashes of the weights and the prepared images, k, batch size, seed, chunking and grouping,
torch version) keeps a file from being continued by another evaluation.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from vaekit.engine.checkpoint import Run, model_fingerprint
from vaekit.engine.files import write_text
from vaekit.errors import DataError
from vaekit.metrics import SCORES

FORMAT = 1


def evaluation_key(run: Run, images: torch.Tensor, iwae_k: int, batch_size: int, seed: int) -> dict:
    """What must match for saved scores to belong to this evaluation and for the resumed part to
    draw the samples an uninterrupted run would (the chunking over k, the grouping of a batch's
    images and torch's generators). The grouping is named only where it applies, a batch larger
    than a pass, so the keys of files written before it existed still match."""
    pixels = images.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    key = {"model_sha256": model_fingerprint(run.config.to_dict(), run.model).hex(),
           "images_sha256": hashlib.sha256(pixels).hexdigest(), "n_images": len(images),
           "iwae_k": iwae_k, "batch_size": batch_size, "seed": seed,
           "samples_per_pass": run.model.samples_per_pass, "torch": torch.__version__}
    if batch_size > run.model.samples_per_pass:
        key["images_per_pass"] = run.model.samples_per_pass  # see vaekit.losses.image_groups
    return key


# the key's fields in the words of the error a mismatch gives
KEY_WORDS = {"model_sha256": "weights", "images_sha256": "images (data, split, --limit or binarization)",
             "n_images": "number of images", "iwae_k": "--iwae", "batch_size": "--batch-size", "seed": "--seed",
             "samples_per_pass": "chunking over k (another vaekit version)", "torch": "torch version",
             "images_per_pass": "grouping of a batch's images (another vaekit version)"}


def resume_partial(path: str | Path, key: dict,
                   generator: torch.Generator) -> tuple[dict[str, list[float]], Callable[[dict], None]]:
    """The scores `path` already holds for this evaluation, with `generator` set to its state after
    them, and the `on_batch` for `evaluate` that saves each further batch. A new file is written at
    once, so that a path that cannot be written fails now rather than after the first batch."""
    path = Path(path)
    save = partial_saver(path, key, generator)
    if path.is_dir():
        raise DataError(f"--partial {path} is a folder; name a file")
    if not path.exists():
        scores = {name: [] for name in SCORES}
        save(scores)
        return scores, save
    return read_partial(path, key, generator), save


def read_partial(path: Path, key: dict, generator: torch.Generator) -> dict[str, list[float]]:
    try:
        saved = json.loads(path.read_text())
        scores = {name: [float(v) for v in saved["scores"][name]] for name in SCORES}
        state = torch.tensor(list(base64.b64decode(saved["generator_state"], validate=True)), dtype=torch.uint8)
        if saved["format"] != FORMAT or not isinstance(saved["key"], dict):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DataError(f"{path} is not a partial evaluation file of vaekit (unreadable or corrupt)") from None
    differ = [KEY_WORDS[name] for name in key if saved["key"].get(name) != key[name]]
    if differ:
        raise DataError(f"{path} holds an evaluation with other {', '.join(differ)}; "
                        "name a new file, or remove this one to start over")
    done = len(scores["recon_nats"])
    if (len(scores["kl_nats"]) != done or len(scores["iwae_nll_nats"]) != (done if key["iwae_k"] else 0)
            or done > key["n_images"] or not (done == key["n_images"] or done % key["batch_size"] == 0)):
        raise DataError(f"{path} is corrupt: its score lists do not describe whole batches of these images")
    try:
        generator.set_state(state)
    except RuntimeError:
        raise DataError(f"{path} is corrupt: its generator state cannot be restored") from None
    return scores


def partial_saver(path: Path, key: dict, generator: torch.Generator) -> Callable[[dict], None]:
    """Rewrite `path` atomically with the scores so far and the generator's state after them."""
    def save(scores: dict[str, list[float]]) -> None:
        state = base64.b64encode(generator.get_state().numpy().tobytes()).decode()
        saved = {"format": FORMAT, "key": key, "images_done": len(scores["recon_nats"]), "generator_state": state,
                 "scores": scores}
        try:
            write_text(path, json.dumps(saved) + "\n")
        except OSError as e:
            raise DataError(f"cannot write the partial evaluation file {path}: {e.strerror or e}") from None
    return save
