"""Run folders: weights and optimizer state in safetensors, config and trainer state in JSON.

RUN/checkpoint/config.json       the full Config (the model rebuilds from it alone)
RUN/checkpoint/model.safetensors the weights
RUN/checkpoint/ema.safetensors   EMA weights, when training kept them (tasks use these)
RUN/checkpoint/optimizer.safetensors + state.json   what `--resume` needs
RUN/checkpoint/optimizer-NAME.safetensors  further optimizers (VAE-GAN: decoder, discriminator)
Nothing here goes through pickle.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vaekit.config import Config
from vaekit.engine.files import atomic_dir
from vaekit.errors import CheckpointError, VaekitError, first_line
from vaekit.models.vae import ImageVAE
from vaekit.registry import build_model

FORMAT = 1


@dataclass
class Run:
    """A trained model with its config and training history, as `vaekit.load` returns it."""

    path: Path
    config: Config
    model: ImageVAE
    history: list[dict]


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The checkpoint folder of a run; after a crash between swaps, the previous one."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").is_file() and (run_dir / "model.safetensors").is_file():
        return run_dir  # a checkpoint folder given directly
    for name in ("checkpoint", "checkpoint.old"):
        if (run_dir / name / "model.safetensors").is_file():
            return run_dir / name
    return run_dir / "checkpoint"


def save_checkpoint(run_dir: str | Path, config: Config, model: ImageVAE, state: dict,
                    optimizer: torch.optim.Optimizer | None = None, ema: torch.nn.Module | None = None,
                    extra_optimizers: dict[str, torch.optim.Optimizer] | None = None) -> None:
    with atomic_dir(Path(run_dir) / "checkpoint") as tmp:
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, **config.to_dict()}, indent=2))
        save_file(_contiguous(model.state_dict()), tmp / "model.safetensors")
        if ema is not None:
            save_file(_contiguous(ema.state_dict()), tmp / "ema.safetensors")
        opt_json = None
        if optimizer is not None:
            tensors, opt_json = _flatten_optimizer(optimizer.state_dict())
            save_file(tensors, tmp / "optimizer.safetensors")
        extra_json = {}
        for name, opt in (extra_optimizers or {}).items():
            tensors, extra_json[name] = _flatten_optimizer(opt.state_dict())
            save_file(tensors, tmp / f"optimizer-{name}.safetensors")
        extra = {"optimizers": extra_json} if extra_json else {}
        (tmp / "state.json").write_text(json.dumps({**state, "optimizer": opt_json, **extra}, indent=2))


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous() for k, v in sd.items()}


def _flatten_optimizer(sd: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for idx, param_state in sd["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def read_config_json(run_dir: str | Path) -> tuple[object, Path]:
    """The parsed checkpoint/config.json of a run folder (image or video) and its path."""
    path = checkpoint_dir(run_dir) / "config.json"
    if not Path(run_dir).exists():
        raise CheckpointError(f"no run folder at {run_dir}")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a vaekit run folder (no checkpoint/config.json in it)")
    try:
        return json.loads(path.read_text()), path
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is corrupt (not valid JSON)") from None


def read_config(run_dir: str | Path) -> Config:
    raw, path = read_config_json(run_dir)
    if isinstance(raw, dict) and raw.get("kind") == "video":
        raise CheckpointError(f"{run_dir} holds a video model; use it with vaekit video generate / predict")
    if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path} is not a vaekit checkpoint config of format {FORMAT}")
    try:
        config = Config.from_dict(raw)
    except VaekitError as e:
        raise CheckpointError(f"{path} holds an invalid config: {e}") from None
    if config.model.image_shape is None or len(config.model.image_shape) != 3:
        raise CheckpointError(f"{path} holds an invalid config: model.image_shape must be channels, height, width")
    return config


def load_weights(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is missing {path.name}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({e})") from None


def load_model_weights(module: torch.nn.Module, sd: dict, source: Path) -> None:
    """Load weights, turning a mismatch (a checkpoint of another model) into one clear error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = [k for k in set(own) & set(sd) if own[k].shape != sd[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"{wrong[0]} has shape {tuple(sd[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}")
        raise CheckpointError(f"the weights in {source} do not fit the model its config describes ({detail})")
    check_finite(sd, source)
    module.load_state_dict(sd)


def check_finite(sd: dict, source: Path) -> None:
    """Training never saves NaN or inf (it skips non-finite steps): a weight file holding them was damaged."""
    broken = next((k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise CheckpointError(f"{source} holds non-finite weights ({broken})")


def load(run_dir: str | Path, ema: bool = True) -> Run:
    """Rebuild a trained model from its run folder alone: `vaekit.load("runs/mlp")`.
    EMA weights are used when the run kept them (set `ema=False` for the raw weights)."""
    config = read_config(run_dir)
    ckpt = checkpoint_dir(run_dir)
    model = build_model(config.model)
    load_model_weights(model, load_weights(ckpt / "model.safetensors"), ckpt / "model.safetensors")
    if ema and (ckpt / "ema.safetensors").is_file():
        averaged = load_weights(ckpt / "ema.safetensors")
        load_model_weights(model, {k.removeprefix("module."): v for k, v in averaged.items()
                                   if k.startswith("module.")}, ckpt / "ema.safetensors")
    state = read_state(ckpt)
    model.eval()
    return Run(Path(run_dir), config, model, state["history"])


def load_vae(run_dir: str | Path) -> Run:
    """`load` for the commands that sample, encode or restore: a lossy codec run has no latent
    distribution to use, so it gets one clear error instead of a missing attribute deep inside."""
    run = load(run_dir)
    if not isinstance(run.model, ImageVAE):
        raise CheckpointError(f"{run_dir} holds a lossy codec ({run.config.model.arch}), not a VAE; use it with "
                              "vaekit compress --quality and vaekit decompress")
    return run


# the counters `--resume` continues from, and their types (a video run's state names its own)
TRAINING_STATE = {"epoch": int, "step": int, "nonfinite_steps": int, "skipped_updates": int, "history": list}
ADDED_LATER = {"skipped_updates": 0, "cpu_seconds": 0.0}  # counters runs saved by earlier versions lack


def read_state(ckpt: Path, fields: dict[str, type | tuple] | None = None) -> dict:
    """state.json as a dict whose `fields` (default: the history) are there with their types; a
    counter added in a later version starts from its default."""
    path = ckpt / "state.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt} is missing state.json")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is corrupt (not valid JSON)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is corrupt (not a JSON object)")
    fields = fields or {"history": list}
    for key in fields.keys() & ADDED_LATER.keys():
        state.setdefault(key, ADDED_LATER[key])
    for key, kind in fields.items():
        value = state.get(key)
        if (not isinstance(value, kind) or isinstance(value, bool)
                or isinstance(value, (int, float)) and not 0 <= value < math.inf):
            raise CheckpointError(f"{path} is corrupt ({key!r} is missing or not a count)" if kind is not list
                                  else f"{path} is corrupt ({key!r} is missing or not a list)")
    return state


def load_training_state(run_dir: str | Path, model: ImageVAE, optimizer: torch.optim.Optimizer,
                        ema: torch.nn.Module | None,
                        extra_optimizers: dict[str, torch.optim.Optimizer] | None = None) -> dict:
    """Restore everything `--resume` needs into the given objects; returns the trainer state."""
    ckpt = checkpoint_dir(run_dir)
    load_model_weights(model, load_weights(ckpt / "model.safetensors"), ckpt / "model.safetensors")
    state = read_state(ckpt, TRAINING_STATE)
    if state.get("optimizer") is None:
        raise CheckpointError(f"{ckpt} holds no optimizer state, so it cannot be resumed")
    restore_optimizer(optimizer, ckpt / "optimizer.safetensors", state["optimizer"])
    for name, opt in (extra_optimizers or {}).items():
        meta = state["optimizers"].get(name) if isinstance(state.get("optimizers"), dict) else None
        if meta is None:
            raise CheckpointError(f"{ckpt} holds no state for the {name} optimizer, so it cannot be resumed")
        restore_optimizer(opt, ckpt / f"optimizer-{name}.safetensors", meta)
    if ema is not None:
        averaged = load_weights(ckpt / "ema.safetensors")
        check_finite(averaged, ckpt / "ema.safetensors")
        try:
            ema.load_state_dict(averaged)
        except (KeyError, RuntimeError) as e:  # missing, extra or differently shaped weights
            raise CheckpointError(f"{ckpt / 'ema.safetensors'} does not fit this model ({first_line(e)})") from None
    return state


def restore_optimizer(optimizer: torch.optim.Optimizer, path: Path, meta) -> None:
    """The optimizer state saved in `path` (tensors) and state.json (`meta`), or one CheckpointError
    if it does not fit this model's parameters: an edited or foreign state would otherwise fail deep
    inside the first step, or (moments of the wrong size) train a NaN model over a good checkpoint."""
    tensors = load_weights(path)
    fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        state_dict = _unflatten_optimizer(tensors, meta)
        changed = _changed_setting(state_dict["param_groups"], fresh)
        if changed:
            raise ValueError(f"its {changed} differs from this run's")
        optimizer.load_state_dict(state_dict)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} and its state.json entry do not fit this model's optimizer ({e})") from None
    for group, own in zip(optimizer.param_groups, fresh):  # load_state_dict kept the saved ones
        group.update({key: own[key] for key in IMPLEMENTATION & own.keys()})
    names = {key: None for st in optimizer.state.values() for key in st}
    for p, st in optimizer.state.items():
        bad = next((k for k, v in st.items() if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape), None)
        if bad:
            raise CheckpointError(f"{path} does not fit this model's optimizer: a {bad!r} of shape "
                                  f"{tuple(st[bad].shape)} for a parameter of shape {tuple(p.shape)}")
        if st.keys() != names.keys():
            raise CheckpointError(f"{path} does not fit this model's optimizer: a parameter's state lacks "
                                  f"{set(names) - set(st)}")
    _match_layouts(optimizer)


IMPLEMENTATION = {"fused", "foreach", "capturable", "differentiable"}  # how, not what, an optimizer computes


def _changed_setting(saved: list, fresh: list[dict]) -> str | None:
    """The first optimizer setting (betas, eps, amsgrad...) the saved groups hold other than the
    run's config gives, which the resumed run would otherwise train with; the learning rate only has
    to be a number (the schedule sets it every step). How the update is computed (fused, foreach...)
    follows the installed torch, and settings one torch version has and another lacks are left to it."""
    if len(saved) != len(fresh):
        return "number of parameter groups"
    for group, own in zip(saved, fresh):
        for key in group.keys() & own.keys() - IMPLEMENTATION:
            value = group[key]
            if key == "lr" and not (isinstance(value, (int, float)) and math.isfinite(value)):
                return "lr"
            if key != "lr" and json.dumps(value) != json.dumps(own[key]):  # tuples are lists in JSON
                return key
    return None


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Each state tensor in its parameter's memory layout (files hold them contiguous), as a fresh
    optimizer's state has: fused AdamW walks the raw memory of both, and with channels-last weights
    and contiguous moments its updates came out wrong."""
    for p, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def model_fingerprint(config: dict, model: torch.nn.Module) -> bytes:
    """sha256 over the config (canonical JSON) and every weight (name, dtype, shape, bytes): two
    models share it only if they compute the same thing. Compressed files and latent indexes
    carry it, so that they are never read with a model other than the one that wrote them."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()
