"""A long evaluation's finished batches on disk, so that `vaekit eval --partial` can stop and resume.

IWAE at k=5000 over a test set takes hours on a CPU. The file holds the per-image scores and
the generator's state after the last finished batch, so a resumed evaluation draws the same
samples and reaches the same result as an uninterrupted one. A key (hashes of the weights and
the prepared images, k, batch size, seed, chunking, torch version) keeps a file from being
continued by another evaluation.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from vaekit.engine.files import write_text
from vaekit.errors import DataError
from vaekit.metrics import SCORES

FORMAT = 1


def tensor_sha256(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def evaluation_key(model: torch.nn.Module, images: torch.Tensor, iwae_k: int, batch_size: int, seed: int) -> dict:
    """What must match for saved scores to belong to this evaluation and for the resumed part to
    draw the samples an uninterrupted run would (the chunking over k and torch's generators)."""
    state = model.state_dict()
    return {"model_sha256": tensor_sha256([state[name] for name in sorted(state)]),
            "images_sha256": tensor_sha256([images]), "n_images": len(images),
            "iwae_k": iwae_k, "batch_size": batch_size, "seed": seed,
            "samples_per_pass": model.samples_per_pass, "torch": torch.__version__}


def load_partial(path: str | Path, key: dict, generator: torch.Generator) -> dict[str, list[float]] | None:
    """The scores `path` holds for this evaluation, with `generator` set to the state it had
    after them; None when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        scores = {name: [float(v) for v in saved["scores"][name]] for name in SCORES}
        state = torch.tensor(list(base64.b64decode(saved["generator_state"], validate=True)), dtype=torch.uint8)
        if saved["format"] != FORMAT or not isinstance(saved["key"], dict):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DataError(f"{path} is not a partial evaluation file of vaekit (unreadable or corrupt)") from None
    differ = [name for name in key if saved["key"].get(name) != key[name]]
    if differ:
        raise DataError(f"{path} holds an evaluation with another {', '.join(differ)}; "
                        "name a new file, or remove this one to start over")
    done = len(scores["recon"])
    if (len(scores["kl"]) != done or len(scores["iwae"]) != (done if key["iwae_k"] else 0)
            or not (done == key["n_images"] or done % key["batch_size"] == 0)):
        raise DataError(f"{path} is corrupt: its score lists do not describe whole batches")
    try:
        generator.set_state(state)
    except RuntimeError:
        raise DataError(f"{path} is corrupt: its generator state cannot be restored") from None
    return scores


def partial_saver(path: str | Path, key: dict, generator: torch.Generator) -> Callable[[dict], None]:
    """`on_batch` for `evaluate`: rewrite `path` atomically with the scores so far."""
    def save(scores: dict[str, list[float]]) -> None:
        state = base64.b64encode(generator.get_state().numpy().tobytes()).decode()
        saved = {"format": FORMAT, "key": key, "images_done": len(scores["recon"]), "generator_state": state,
                 "scores": scores}
        write_text(path, json.dumps(saved) + "\n")
    return save
