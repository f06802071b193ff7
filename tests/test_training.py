import json
import math
import time

import pytest
import torch

import vaekit
from vaekit.engine import checkpoint, trainer
from vaekit.engine.batches import batches
from vaekit.engine.distributed import World
from vaekit.engine.trainer import fit
from vaekit.errors import CheckpointError, ConfigError, TrainingError
from vaekit.registry import build_model
from conftest import tiny_config


def weights(run_dir):
    return checkpoint.load_weights(checkpoint.checkpoint_dir(run_dir) / "model.safetensors")


def test_one_step_changes_every_weight(tmp_path):
    cfg = tiny_config(epochs=1, limit=64, batch_size=64, image_shape=(1, 8, 8))
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_model(cfg.model).state_dict().items()}
    fit(cfg, tmp_path / "run", progress=False)
    after = weights(tmp_path / "run")
    assert set(before) == set(after)
    for name in before:
        assert not torch.equal(before[name], after[name]), f"{name} did not change"


def test_training_lowers_the_loss(tmp_path):
    run = fit(tiny_config(epochs=6, limit=None), tmp_path / "run", progress=False)
    losses = [h["train_neg_elbo_nats"] for h in run.history]
    assert losses[-1] < losses[0] - 0.2
    assert all(h["val_neg_elbo_nats"] is not None for h in run.history)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 7))


def test_same_seed_same_weights(tmp_path):
    fit(tiny_config(), tmp_path / "a", progress=False)
    fit(tiny_config(), tmp_path / "b", progress=False)
    fit(tiny_config(seed=1), tmp_path / "c", progress=False)
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class Killed(Exception):
    pass


@pytest.mark.parametrize("ema_every", [1, 3])  # 3: the EMA's folds fall across the epoch ends
def test_kill_and_resume_equals_uninterrupted(tmp_path, monkeypatch, ema_every):
    cfg = tiny_config(epochs=3, ema_decay=0.9, ema_every=ema_every, lr_schedule="cosine", warmup_steps=3,
                      kl_warmup_epochs=1.5, grad_clip=5.0)
    fit(cfg, tmp_path / "whole", progress=False)

    real = trainer.compute_loss
    calls = {"n": 0}

    def dies_mid_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, second batch (4 batches per epoch)
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "compute_loss", dies_mid_epoch_two)
    with pytest.raises(Killed):
        fit(cfg, tmp_path / "broken", progress=False)
    assert json.loads((tmp_path / "broken/checkpoint/state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(trainer, "compute_loss", real)
    resumed = fit(cfg, tmp_path / "broken", resume=True, progress=False)

    a, b = weights(tmp_path / "whole"), weights(tmp_path / "broken")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
    ema_a = checkpoint.load_weights(tmp_path / "whole/checkpoint/ema.safetensors")
    ema_b = checkpoint.load_weights(tmp_path / "broken/checkpoint/ema.safetensors")
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], rtol=1e-6, atol=1e-7)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_ema_every_k_steps_leaves_training_alone_and_keeps_the_span_of_the_average(tmp_path):
    """Folding into the EMA every 2nd step with the decay squared: the same raw weights, half the
    folds, and an average near the every-step one; without squaring the decay it would span twice
    as many steps and sit twice as far away (0.42 against 0.22 of the raw weights' distance)."""
    def load(name, file):
        return checkpoint.load_weights(checkpoint.checkpoint_dir(tmp_path / name) / file)

    fit(tiny_config(epochs=6, ema_decay=0.9), tmp_path / "every", progress=False)  # 24 steps
    fit(tiny_config(epochs=6, ema_decay=0.9, ema_every=2), tmp_path / "second", progress=False)
    raw, every, second = load("every", "model.safetensors"), load("every", "ema.safetensors"), load(
        "second", "ema.safetensors")
    assert all(torch.equal(raw[k], load("second", "model.safetensors")[k]) for k in raw)
    assert every["n_averaged"].item() == 24 and second["n_averaged"].item() == 12

    def distance(a, b):
        return math.sqrt(sum(((a[f"module.{k}"] - b[k]) ** 2).sum().item() for k in raw))

    apart = distance(second, {k: every[f"module.{k}"] for k in raw}) / distance(every, raw)
    assert 0 < apart < 0.3


def test_channels_last_trains_as_channels_first_and_resumes_exactly(tmp_path):
    conv = {"arch": "conv", "hidden_dims": (8, 16), "fc_dim": 32, "ema_decay": 0.9}
    fit(tiny_config(**conv), tmp_path / "first", progress=False)
    cfg = tiny_config(**conv, channels_last=True)
    fit(cfg, tmp_path / "last", progress=False)
    fit(cfg.replace({"epochs": 1}), tmp_path / "resumed", progress=False)
    fit(cfg, tmp_path / "resumed", resume=True, progress=False)
    first, last, resumed = (weights(tmp_path / name) for name in ("first", "last", "resumed"))
    for k in first:  # the same arithmetic, summed in another order
        torch.testing.assert_close(first[k], last[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(last[k], resumed[k], rtol=1e-6, atol=1e-7)
    data = trainer.prepare_data(cfg, progress=False)
    laid_out = trainer.Trainer(trainer.resolve_config(cfg, data), data, tmp_path / "unused", World(), progress=False)
    convs = [m.weight for m in laid_out.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert laid_out.in_layout(data.train[:4].float()).is_contiguous(memory_format=torch.channels_last)


def test_resume_refuses_other_settings_and_existing_runs(tmp_path):
    fit(tiny_config(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="already holds a trained run"):
        fit(tiny_config(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="model.latent_dim=4, not 5"):
        fit(tiny_config(epochs=2, latent_dim=5), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        fit(tiny_config(), tmp_path / "empty", resume=True, progress=False)
    longer = fit(tiny_config(epochs=2), tmp_path / "run", resume=True, progress=False)
    assert len(longer.history) == 2


def nan_after(real, start, stop):
    calls = {"n": 0}

    def compute(*args, **kwargs):
        calls["n"] += 1
        terms = real(*args, **kwargs)
        if start <= calls["n"] < stop:
            terms.loss = terms.loss * float("nan")
        return terms

    return compute


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "compute_loss", nan_after(trainer.compute_loss, 2, 5))
    run = fit(tiny_config(epochs=1, max_nonfinite_steps=5), tmp_path / "run", progress=False)
    assert run.history[-1]["nonfinite_steps"] == 3
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_the_epoch_means_weight_each_step_by_its_images_and_leave_out_skipped_steps(tmp_path, monkeypatch):
    real, calls = trainer.compute_loss, {"n": 0}

    def compute(model, x, *args, **kwargs):  # terms that tell the batches apart: -ELBO = batch size
        calls["n"] += 1
        terms = real(model, x, *args, **kwargs)
        n = torch.tensor(float(len(x)))
        loss = terms.loss * float("nan") if calls["n"] == 2 else terms.loss
        return trainer.LossTerms(loss, n, 2 * n, torch.tensor(1.0))

    monkeypatch.setattr(trainer, "compute_loss", compute)
    run = fit(tiny_config(epochs=1, limit=150, batch_size=64), tmp_path / "run", progress=False)
    h = run.history[0]  # batches of 64, 64 (skipped: non-finite) and 22 images
    assert h["nonfinite_steps"] == 1
    assert h["train_neg_elbo_nats"] == pytest.approx((64 * 64 + 22 * 22) / 86)
    assert h["train_recon_nats"] == pytest.approx(2 * (64 * 64 + 22 * 22) / 86)
    assert h["train_kl_nats"] == pytest.approx(1.0)
    assert h["images_per_second"] * h["seconds"] == pytest.approx(86)


def test_too_many_nonfinite_steps_stop_with_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "compute_loss", nan_after(trainer.compute_loss, 5, 10**9))
    with pytest.raises(TrainingError, match="non-finite loss.*last good checkpoint"):
        fit(tiny_config(epochs=3, max_nonfinite_steps=2), tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run/checkpoint/state.json").read_text())
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run").values())


def test_load_round_trip_gives_the_same_model(trained_run):
    again = vaekit.load(trained_run.path)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(again.model.reconstruct(x), trained_run.model.reconstruct(x))
    raw = vaekit.load(trained_run.path, ema=False)
    assert not torch.equal(raw.model.reconstruct(x), again.model.reconstruct(x))  # EMA weights differ
    assert again.config == trained_run.config
    posterior = again.model.encode(x)
    assert posterior.sample(torch.Generator().manual_seed(0)).shape == (3, 4)
    assert posterior.kl().shape == (3,) and posterior.mean.shape == (3, 4)


def test_checkpoint_is_not_pickle(trained_run):
    files = sorted(p.name for p in (trained_run.path / "checkpoint").iterdir())
    assert files == ["config.json", "ema.safetensors", "model.safetensors", "optimizer.safetensors", "state.json"]


def test_bad_checkpoints_are_clear_errors(trained_run, tmp_path):
    import shutil

    with pytest.raises(CheckpointError, match="no run folder"):
        vaekit.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a vaekit run folder"):
        vaekit.load(tmp_path / "empty")

    broken = tmp_path / "broken"
    shutil.copytree(trained_run.path, broken)
    (broken / "checkpoint/model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        vaekit.load(broken)

    other = tmp_path / "other"
    shutil.copytree(trained_run.path, other)
    cfg = json.loads((other / "checkpoint/config.json").read_text())
    cfg["model"]["latent_dim"] = 7
    (other / "checkpoint/config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit the model"):
        vaekit.load(other)

    cfg["model"]["depth"] = 3
    (other / "checkpoint/config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="invalid config.*unknown config key 'model.depth'"):
        vaekit.load(other)
    del cfg["model"]["depth"]
    for shape, message in (([1, -8, 8], "image_shape must be at least 1"), (None, "channels, height, width")):
        cfg["model"].update(latent_dim=trained_run.config.model.latent_dim, image_shape=shape)
        (other / "checkpoint/config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match=message):
            vaekit.load(other)

    from safetensors.torch import load_file, save_file

    nan = tmp_path / "nan"
    shutil.copytree(trained_run.path, nan)
    weights = load_file(nan / "checkpoint/model.safetensors")
    weights["decoder.net.0.bias"][0] = float("nan")
    save_file(weights, nan / "checkpoint/model.safetensors")
    with pytest.raises(CheckpointError, match=r"holds non-finite weights \(decoder.net.0.bias\)"):
        vaekit.load(nan)


def test_resume_refuses_an_edited_state_and_leaves_the_checkpoint_as_it_was(trained_run, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    config = trained_run.config.replace({"epochs": 3})

    def edited(name: str, state_edit=None, tensors_edit=None):
        ckpt = shutil.copytree(trained_run.path, tmp_path / name) / "checkpoint"
        if state_edit:
            state = json.loads((ckpt / "state.json").read_text())
            state_edit(state)
            (ckpt / "state.json").write_text(json.dumps(state))
        if tensors_edit:
            tensors = load_file(ckpt / "optimizer.safetensors")
            tensors_edit(tensors)
            save_file(tensors, ckpt / "optimizer.safetensors")
        return ckpt.parent

    (edited("list") / "checkpoint/state.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        vaekit.load(tmp_path / "list")
    cases = [(dict(state_edit=lambda s: s.pop("epoch")), "'epoch' is missing or not a count"),
             (dict(state_edit=lambda s: s.update(step="x")), "'step' is missing or not a count"),
             (dict(state_edit=lambda s: s["optimizer"].update(param_groups=[])), "do not fit this model's optimizer"),
             (dict(state_edit=lambda s: s["optimizer"].pop("scalars")), "do not fit this model's optimizer"),
             (dict(tensors_edit=lambda t: t.pop("3.exp_avg")), r"a parameter's state lacks \{'exp_avg'\}"),
             (dict(state_edit=lambda s: s["optimizer"]["param_groups"][0].update(amsgrad=True)), "its amsgrad differs"),
             (dict(state_edit=lambda s: s["optimizer"]["param_groups"][0].update(betas="ab")), "its betas differs"),
             (dict(state_edit=lambda s: s["optimizer"]["param_groups"][0].update(lr="abc")), "its lr differs"),
             # moments of the wrong size trained 14 NaN steps and saved them over the good checkpoint
             (dict(tensors_edit=lambda t: t.update({"0.exp_avg": t["0.exp_avg"].flatten()[:3]})),
              r"an? 'exp_avg' of shape \(3,\) for a parameter of shape \(32, 64\)")]
    for i, (edit, message) in enumerate(cases):
        run = edited(f"case{i}", **edit)
        before = {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()}
        with pytest.raises(CheckpointError, match=message):
            fit(config, run, resume=True, progress=False)
        assert {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()} == before
    # what earlier versions and other torch builds saved: no skipped_updates, foreach instead of fused
    old = edited("old", state_edit=lambda s: (s.pop("skipped_updates"),
                                               s["optimizer"]["param_groups"][0].update(fused=None, foreach=True)))
    fresh = trainer.make_optimizer(build_model(config.model), config.train).param_groups[0]
    restored = trainer.make_optimizer(build_model(config.model), config.train)
    checkpoint.restore_optimizer(restored, old / "checkpoint/optimizer.safetensors",
                                 json.loads((old / "checkpoint/state.json").read_text())["optimizer"])
    assert all(restored.param_groups[0][key] == fresh[key] for key in ("fused", "foreach"))  # the installed torch's
    assert len(fit(config, old, resume=True, progress=False).history) == 3
    ema_file = edited("ema") / "checkpoint/ema.safetensors"
    ema = load_file(ema_file)
    ema["module.encoder.net.0.weight"] = ema["module.encoder.net.0.weight"][:3]
    save_file(ema, ema_file)
    with pytest.raises(CheckpointError, match="ema.safetensors does not fit this model"):
        fit(config, tmp_path / "ema", resume=True, progress=False)


@pytest.mark.parametrize("overrides, message", [
    ({"iwae_k": 3, "beta": 4.0}, r"IWAE training \(iwae_k > 1\) does not use beta; leave it"),
    ({"iwae_k": 3, "occlusion": "blocks", "kl_warmup_epochs": 1.0}, "does not use kl_warmup_epochs, occlusion"),
    ({"model": "hyperprior", "free_bits": 1.0, "noise": "gaussian"},
     "--model hyperprior does not use free_bits, noise or occlusion; leave them"),
])
def test_settings_the_objective_would_ignore_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        fit(tiny_config(**overrides), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_report_files(trained_run):
    for name in ("index.html", "samples.png", "reconstructions.png", "interpolation.png", "traversal.png",
                 "loss.png", "metrics.json"):
        assert (trained_run.path / name).stat().st_size > 0, name
    metrics = json.loads((trained_run.path / "metrics.json").read_text())
    assert metrics["iwae_nll_nats"] <= metrics["neg_elbo_nats"] + 0.5
    assert metrics["split"] == "held-out"
    assert "samples.png" in (trained_run.path / "index.html").read_text()


def test_a_run_that_kept_no_images_back_says_its_report_scored_training_images(tmp_path, capsys):
    from vaekit.cli.training import print_run

    run = vaekit.train(tiny_config(epochs=1, val_fraction=0), tmp_path / "run", progress=False)
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["split"] == "training (val_fraction 0)"
    assert "training (val_fraction 0) images" in (run.path / "index.html").read_text()
    print_run(run.path)
    assert "training (val_fraction 0): negative ELBO" in capsys.readouterr().out


@pytest.mark.parametrize("train_binarize", [True, False])
def test_a_bernoulli_model_is_scored_on_binarized_images_whatever_it_trained_on(tmp_path, monkeypatch,
                                                                               train_binarize):
    from vaekit import report
    from vaekit.data import load_dataset
    from vaekit.engine.batches import binarize_once

    run = fit(tiny_config(epochs=1, binarize=train_binarize), tmp_path / "run", progress=False)
    held_out = load_dataset("digits", "test").images[:40]
    scored = []
    monkeypatch.setattr(report, "evaluate", lambda model, x, **kw: scored.append(x) or {"neg_elbo_nats": 0.0})
    report.write_report(run, held_out, tmp_path / "report", iwae_k=0, progress=False)
    assert torch.equal(scored[0], binarize_once(held_out)[:len(scored[0])])


def test_a_skip_threshold_that_skips_every_update_stops_the_run(tmp_path):
    """Isolated outliers are skipped; when every update exceeds --skip-grad-norm the weights never
    change again, so the run stops with a message naming the flag instead of idling through epochs."""
    config = tiny_config(epochs=5, batch_size=2, skip_grad_norm=1e-9)
    with pytest.raises(TrainingError, match=r"100 updates in a row .* --skip-grad-norm 1e-09"):
        fit(config, tmp_path / "run", progress=False)


def test_report_scores_as_many_images_as_its_time_budget_allows(monkeypatch):
    from vaekit import report

    class Slow(torch.nn.Module):  # 10 ms per image per forward pass
        def forward(self, x, generator=None):
            time.sleep(0.01 * len(x))

    images = torch.zeros(200, 1, 4, 4)
    monkeypatch.setattr(report, "IWAE_SECONDS", 20.0)
    assert 15 <= report.affordable_images(Slow(), images, iwae_k=100) <= 20  # 20 s / (100 x 10 ms)
    monkeypatch.setattr(report, "IWAE_SECONDS", 1.0)
    assert report.affordable_images(Slow(), images, iwae_k=100) == report.MIN_IWAE_IMAGES
    assert report.affordable_images(Slow(), images[:7], iwae_k=100) == 7
    assert report.affordable_images(Slow(), images, iwae_k=0) == 200


def test_dynamic_binarization_draws_each_pixel_with_probability_pixel_over_255():
    levels = torch.arange(256, dtype=torch.uint8)
    images = levels.repeat(20_000).view(-1, 1, 16, 16)  # each grey level 20,000 times
    x = batches(images, len(images), torch.Generator().manual_seed(0), binarize=True).__next__()
    assert x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    freq = x.view(-1).view(-1, 256).mean(0)  # the shuffle moves whole images, so columns keep their level
    p = levels.double() / 255
    assert freq[0] == 0 and freq[255] == 1
    assert ((freq.double() - p).abs() <= 5 * (p * (1 - p) / 20_000).sqrt()).all()  # 0 at the ends


@pytest.mark.parametrize("model", [{"arch": "mlp"},
                                   {"arch": "conv", "hidden_dims": (8, 16), "fc_dim": 32},
                                   {"arch": "hvae", "likelihood": "logistic-mixture", "hvae_width": 8,
                                    "hvae_middle": 4, "hvae_groups": (1, 1)}])
def test_bf16_step_runs_its_products_in_bf16_and_its_loss_in_fp32(model):
    from vaekit.engine import precision

    cfg = tiny_config(**model, image_shape=(1, 8, 8))
    torch.manual_seed(0)
    net = build_model(cfg.model)
    x = torch.rand(16, 1, 8, 8).round()
    products = []
    record = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: products.append(out.dtype) if isinstance(module, (torch.nn.Linear,
                                                                                     torch.nn.Conv2d)) else None)
    try:
        fp32 = trainer.compute_loss(net, x, cfg, 1.0, torch.Generator().manual_seed(1))
        assert set(products) == {torch.float32}
        products.clear()
        with precision.autocast("bf16", torch.device("cpu")):
            bf16 = trainer.compute_loss(net, x, cfg, 1.0, torch.Generator().manual_seed(1))
        assert set(products) == {torch.bfloat16}
    finally:
        record.remove()
    assert bf16.loss.dtype == bf16.recon.dtype == bf16.kl.dtype == torch.float32
    assert bf16.neg_elbo.item() == pytest.approx(fp32.neg_elbo.item(), rel=2e-2)


def test_bf16_runs_train_and_resume_in_either_precision(tmp_path, monkeypatch):
    from vaekit.engine import precision

    formats = []
    autocast = precision.autocast

    def recording(number_format, device):
        formats.append(number_format)
        return autocast(number_format, device)

    monkeypatch.setattr(precision, "autocast", recording)
    fit(tiny_config(epochs=1, precision="bf16"), tmp_path / "run", progress=False)
    assert formats and set(formats) == {"bf16"}
    run = fit(tiny_config(epochs=2), tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in run.history] == [1, 2]
    assert all(math.isfinite(h["val_neg_elbo_nats"]) for h in run.history)


def test_bf16_is_refused_where_a_loss_needs_fp32_and_fp64_stays_fp64(tmp_path, monkeypatch):
    from vaekit.errors import ConfigError
    from vaekit.models.distributions import DiagonalGaussian
    from vaekit.models.likelihoods import Bernoulli

    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the settings were refused")

    monkeypatch.setattr(trainer, "prepare_data", no_data)
    for model in ({"arch": "factorized"}, {"arch": "vaegan"}):
        with pytest.raises(ConfigError, match="trains in fp32"):
            fit(tiny_config(**model, precision="bf16"), tmp_path / model["arch"], progress=False)
    q = DiagonalGaussian(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))
    assert q.mean.dtype == q.log_var.dtype == torch.float64  # the bits-back coder's arithmetic
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64).round()
    assert Bernoulli().log_prob(torch.zeros(2, 1, 4, 4, dtype=torch.float64), x).dtype == torch.float64


def test_bf16_units_are_read_from_the_cpu_flags_and_their_absence_is_warned(monkeypatch, capsys):
    from vaekit.engine import precision

    assert precision.cpu_has_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n") is True
    assert precision.cpu_has_bf16("flags\t\t: fpu sse2 avx2 fma\n") is False
    assert precision.cpu_has_bf16("Features\t: fp asimd bf16 i8mm\n") is True
    assert precision.cpu_has_bf16("model name : something\n") is None
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    precision.warn_if_emulated("fp32", torch.device("cpu"))
    assert capsys.readouterr().err == ""
    precision.warn_if_emulated("bf16", torch.device("cpu"))
    assert "without bf16 units" in capsys.readouterr().err
