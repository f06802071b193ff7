"""VAE-GAN (models/vaegan.py, engine/adversarial.py) and the sample-quality metrics (quality.py)."""
import json

import pytest
import torch
import torch.nn.functional as F

import vaekit
from vaekit.cli.main import main
from vaekit.engine import adversarial, checkpoint, distributed
from vaekit.engine.adversarial import AdversarialTrainer, vaegan_losses
from vaekit.engine.trainer import fit, prepare_data, resolve_config
from vaekit.errors import ConfigError, DataError
from vaekit.models.vaegan import VAEGAN
from vaekit.quality import (ClassifierSpec, feature_classifier, frechet_distance, inception_fid, sample_quality,
                            sharpness)
from conftest import error_of, tiny_config, usage_error_of

GAN = {"model": "vaegan", "vaegan_base": "mlp", "hidden_dims": (16,), "disc_widths": (4, 8)}
CLI_GAN = ["--data", "digits", "--limit", "200", "--model", "vaegan", "--vaegan-base", "mlp", "--hidden-dims", "16",
           "--disc-widths", "4,8", "--latent-dim", "3", "--epochs", "2", "--batch-size", "50"]
TINY_SPEC = ClassifierSpec(epochs=1, max_images=300)


def gan_config(**overrides):
    return tiny_config(**{**GAN, **overrides})


def weights(run_dir, name="model"):
    return checkpoint.load_weights(checkpoint.checkpoint_dir(run_dir) / f"{name}.safetensors")


def make_trainer(tmp_path, config):
    data = prepare_data(config, progress=False)
    config = resolve_config(config, data)
    return AdversarialTrainer(config, data, tmp_path, distributed.World(), progress=False)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vaegan") / "run"
    assert main(["train", *CLI_GAN, "--out", str(out), "--no-report", "--threads", "1"]) == 0
    return out


@pytest.mark.parametrize("disc_arch", ["conv", "mlp"])
def test_one_step_changes_encoder_decoder_and_discriminator(tmp_path, disc_arch):
    cfg = gan_config(epochs=1, limit=64, batch_size=64, image_shape=(1, 8, 8), disc_arch=disc_arch)
    torch.manual_seed(0)
    from vaekit.registry import build_model

    before = {k: v.clone() for k, v in build_model(cfg.model).state_dict().items()}
    fit(cfg, tmp_path / "run", progress=False)
    after = weights(tmp_path / "run")
    assert set(before) == set(after) and any(k.startswith("discriminator.") for k in after)
    for name in before:
        assert not torch.equal(before[name], after[name]), f"{name} did not change"


def test_each_optimizer_gets_only_its_own_loss(tmp_path):
    trainer = make_trainer(tmp_path, gan_config())
    model, groups = trainer.model, trainer.groups
    owned = {part: {id(p) for p in opt.param_groups[0]["params"]} for part, opt in trainer.optimizers().items()}
    assert {part: {id(p) for p in groups[part]} for part in groups} == owned
    assert sum(map(len, owned.values())) == len({id(p) for p in model.parameters()})  # disjoint, and all of them
    assert all(n.startswith("discriminator.") for n, p in model.named_parameters() if id(p) in owned["discriminator"])

    x = torch.rand(16, 1, 8, 8)

    def terms():
        return vaegan_losses(model, x.bernoulli(generator=torch.Generator().manual_seed(1)), x, trainer.config.gan,
                             1.0, 0.0, torch.Generator().manual_seed(0))

    expected = {}
    for part in groups:  # the gradient of each part's own loss, computed alone
        t = terms()
        expected[part] = torch.autograd.grad(getattr(t, part), groups[part], allow_unused=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert trainer.apply(terms(), epoch=0)
    for part in groups:
        for p, g in zip(groups[part], expected[part]):
            torch.testing.assert_close(p.grad, torch.zeros_like(p) if g is None else g)
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"encoder", "decoder", "discriminator"}


class Killed(Exception):
    pass


def test_kill_and_resume_equals_uninterrupted(tmp_path, monkeypatch):
    cfg = gan_config(epochs=3, ema_decay=0.9, lr_schedule="cosine", warmup_steps=3, kl_warmup_epochs=1.5, grad_clip=5.0)
    fit(cfg, tmp_path / "whole", progress=False)
    real, calls = adversarial.vaegan_losses, {"n": 0}

    def dies_mid_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, second batch (4 batches per epoch)
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(adversarial, "vaegan_losses", dies_mid_epoch_two)
    with pytest.raises(Killed):
        fit(cfg, tmp_path / "broken", progress=False)
    monkeypatch.setattr(adversarial, "vaegan_losses", real)
    resumed = fit(cfg, tmp_path / "broken", resume=True, progress=False)
    for name in ("model", "ema", "optimizer", "optimizer-decoder", "optimizer-discriminator"):
        a, b = weights(tmp_path / "whole", name), weights(tmp_path / "broken", name)
        assert set(a) == set(b) and a, name
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
    state = json.loads((tmp_path / "broken/checkpoint/state.json").read_text())
    assert set(state["optimizers"]) == {"decoder", "discriminator"}
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert all(0 <= h["train_disc_real_prob"] <= 1 for h in resumed.history)


def test_load_round_trip_and_missing_optimizer_state(gan_run, tmp_path):
    import shutil

    run = vaekit.load(gan_run)
    assert isinstance(run.model, VAEGAN)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(vaekit.load(gan_run).model.reconstruct(x), run.model.reconstruct(x))
    files = sorted(p.name for p in (gan_run / "checkpoint").iterdir())
    assert files == ["config.json", "model.safetensors", "optimizer-decoder.safetensors",
                     "optimizer-discriminator.safetensors", "optimizer.safetensors", "state.json"]
    broken = tmp_path / "broken"
    shutil.copytree(gan_run, broken)
    state = json.loads((broken / "checkpoint/state.json").read_text())
    del state["optimizers"]["discriminator"]
    (broken / "checkpoint/state.json").write_text(json.dumps(state))
    with pytest.raises(vaekit.VaekitError, match="no state for the discriminator optimizer"):
        fit(vaekit.load(broken).config.replace({"epochs": 3}), broken, resume=True, progress=False)


def test_sample_reconstruct_eval_and_quality_on_a_vaegan_run(gan_run, tmp_path, capsys):
    from PIL import Image

    assert main(["sample", str(gan_run), "-n", "8", "-o", str(tmp_path / "s.png")]) == 0
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy()).save(tmp_path / "d.png")
    assert main(["reconstruct", str(gan_run), str(tmp_path / "d.png"), "-o", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r/d_recon.png").is_file()
    capsys.readouterr()
    assert main(["eval", str(gan_run), "--limit", "50"]) == 0
    assert json.loads(capsys.readouterr().out)["neg_elbo_nats"] > 0
    assert main(["quality", str(gan_run), "-n", "40", "--classifier-dir", str(tmp_path / "cls"),
                 "-o", str(tmp_path / "q.json")]) == 0
    q = json.loads((tmp_path / "q.json").read_text())
    assert q["fd_classifier"] > 0 and q["sharpness_samples"] > 0 and q["n_samples"] == 40
    assert len(list((tmp_path / "cls").glob("digits-1x8x8-*.json"))) == 1 and q["real"] == "test split"

    import numpy as np  # an array file has one split: the real images are its held-out part

    np.save(tmp_path / "crops.npy", np.random.default_rng(0).integers(0, 256, (300, 8, 8), dtype=np.uint8))
    assert main(["quality", str(gan_run), "--data", str(tmp_path / "crops.npy"), "-n", "20", "--classifier-dir",
                 str(tmp_path / "cls"), "-o", str(tmp_path / "q2.json")]) == 0
    q2 = json.loads((tmp_path / "q2.json").read_text())
    assert q2["real"] == "held-out part of the data" and q2["n_real"] == 15  # val_fraction 0.05 of 300


def test_vaegan_refuses_what_it_cannot_train(tmp_path):
    for overrides, message in [({"iwae_k": 4}, "single-sample ELBO"), ({"noise": "gaussian"}, "no noise"),
                               ({"condition": "noise"}, "unconditional")]:
        with pytest.raises(ConfigError, match=message):
            fit(gan_config(**overrides), tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="disc-widths"):
        fit(gan_config(disc_widths=(4, 8, 8, 8)), tmp_path / "r2", progress=False)


def test_frechet_distance_is_zero_on_itself_and_grows_with_a_shift():
    a = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(a, a)) < 1e-6
    shifts = [frechet_distance(a, a + s) for s in (0.1, 0.5, 1.0)]
    assert shifts == sorted(shifts) and shifts[0] > 0
    assert shifts[2] == pytest.approx(16.0, rel=1e-6)  # a pure shift adds ||delta||^2
    b = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    assert 0 < frechet_distance(a, b) < frechet_distance(a, 2 * b)


def test_sharpness_of_a_blurred_image_is_lower():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1)
    assert (sharpness(blurred) < sharpness(x)).all()
    assert sharpness(torch.full((1, 1, 8, 8), 0.5)).item() == 0


def test_quality_errors_are_clear(tmp_path, gan_run, capsys):
    with pytest.raises(DataError, match="same F"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        sharpness(torch.zeros(8, 8))
    with pytest.raises(DataError, match="at least 3x3"):
        sharpness(torch.zeros(1, 1, 2, 2))
    with pytest.raises(DataError, match="uint8"):
        feature_classifier(torch.rand(10, 1, 8, 8), None, "x", cache_dir=tmp_path)
    with pytest.raises(DataError, match="Inception FID needs .* pass --inception PATH"):
        inception_fid(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8), tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a network")
    with pytest.raises(DataError, match="not a TorchScript Inception network"):
        inception_fid(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8), tmp_path / "bad.pt")
    assert "argument -n: must be at least 2" in usage_error_of(capsys, ["quality", str(gan_run), "-n", "1"])
    (tmp_path / "a_file").write_text("")
    assert "--classifier-dir" in error_of(
        capsys, ["quality", str(gan_run), "--classifier-dir", str(tmp_path / "a_file")])
    assert "Inception FID needs" in error_of(capsys, ["quality", str(gan_run), "-n", "10", "--classifier-dir",
                                                      str(tmp_path / "c"), "--inception", str(tmp_path / "no.pt")])


class FakeInception(torch.nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_fid_runs_a_torchscript_network(tmp_path):
    torch.jit.script(FakeInception()).save(str(tmp_path / "inception.pt"))
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert abs(inception_fid(x, x, tmp_path / "inception.pt")) < 1e-4  # features are on a 0..255 scale
    assert inception_fid(x, x * 0.5, tmp_path / "inception.pt") > 1.0


def test_classifier_is_cached_per_dataset_and_deterministic(tmp_path, monkeypatch):
    images = (torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 255).byte()
    labels = torch.arange(400) % 3
    a = feature_classifier(images, labels, "toy", cache_dir=tmp_path / "a", spec=TINY_SPEC, progress=False)
    b = feature_classifier(images, labels, "toy", cache_dir=tmp_path / "b", spec=TINY_SPEC, progress=False)
    x = images[:10].float() / 255
    assert torch.equal(a.features(x), b.features(x))  # same seed, same network
    meta = json.loads(next((tmp_path / "a").glob("toy-1x8x8-*.json")).read_text())
    assert meta["task"] == "labels" and meta["classes"] == 3 and 0 <= meta["held_out_accuracy"] <= 1

    monkeypatch.setattr("vaekit.quality.train_classifier", lambda *a, **k: pytest.fail("retrained a cached one"))
    cached = feature_classifier(images, labels, "toy", cache_dir=tmp_path / "a", spec=TINY_SPEC, progress=False)
    assert torch.equal(cached.features(x), a.features(x))
    monkeypatch.undo()
    monkeypatch.setenv("VAEKIT_CLASSIFIERS", str(tmp_path / "env"))
    feature_classifier(images[:300], None, "toy", spec=TINY_SPEC, progress=False)  # other images: other key
    rotation = json.loads(next((tmp_path / "env").glob("toy-1x8x8-*.json")).read_text())
    assert rotation["task"] == "rotation" and rotation["key"] != meta["key"]
    assert not list((tmp_path / "env").glob(".*.tmp"))  # written atomically, nothing left behind


def test_sample_quality_ranks_a_blurrier_model_lower(tmp_path):
    images = (torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 255).byte()
    classifier = feature_classifier(images, None, "toy", cache_dir=tmp_path, spec=TINY_SPEC, progress=False)

    class Copies(torch.nn.Module):  # "samples" are real images, optionally blurred
        def __init__(self, blur):
            super().__init__()
            self.blur = blur

        def sample(self, n, generator=None):
            x = images[torch.randint(0, len(images), (n,), generator=generator)].float() / 255
            return F.avg_pool2d(x, 3, stride=1, padding=1) if self.blur else x

    sharp, blurry = (sample_quality(Copies(b), images, classifier, n=200) for b in (False, True))
    assert sharp["sharpness_samples"] > blurry["sharpness_samples"]
    assert sharp["fd_classifier"] < blurry["fd_classifier"]
