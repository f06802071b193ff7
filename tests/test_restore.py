"""Restoration: the conditional VAE, the tasks (denoise, inpaint, repair, upscale), tiling, the CLI."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import vaekit
from vaekit.cli.main import main
from vaekit.config import Config, binarizes
from vaekit.errors import ConfigError, DataError
from vaekit.models.conditional import ConditionalVAE
from vaekit.models.distributions import DiagonalGaussian
from vaekit.registry import build_model
from vaekit.tasks.inpaint import box_mask, inpaint
from vaekit.tasks.restore import denoise, estimate_sigma, random_crops, repair, self_ensemble, upscale
from vaekit.tasks.tiles import run_tiled, tile_starts
from conftest import tiny_config, usage_error_of

G = torch.Generator


def cvae(condition, arch="mlp", shape=(1, 8, 8), likelihood="bernoulli", **kw):
    cfg = Config().replace({"model": arch, "condition": condition, "image_shape": shape, "latent_dim": 3,
                            "likelihood": likelihood, "hidden_dims": (16,) if arch == "mlp" else (4, 8),
                            "fc_dim": 16, "cvae_width": 8, "cvae_blocks": 1, "condition_scale": 2, **kw})
    torch.manual_seed(0)
    return build_model(cfg.model).eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs trained for 2 epochs on the built-in 8x8 digits, reloaded from their folders."""
    root = tmp_path_factory.mktemp("restore")
    configs = {"sr": {"condition": "downscale", "condition_scale": 2}, "jpeg": {"condition": "jpeg"},
               "noise": {"condition": "noise", "condition_noise_sigma": 0.3},
               "plain": {"occlusion": "blocks", "binarize": False},
               "holes": {"condition": "occlusion", "condition_prior": "learned", "binarize": False}}
    for name, extra in configs.items():
        vaekit.train(tiny_config(hidden_dims=(32,), **extra), root / name, progress=False, report=name == "sr")
    return {name: root / name for name in configs}


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("condition", ["downscale", "jpeg", "noise", "occlusion"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "logistic-mixture"])
def test_conditional_vae_shapes(arch, condition, likelihood):
    model = cvae(condition, arch, (3, 8, 12), likelihood)
    x = torch.rand(4, 3, 8, 12)
    out = model(x, generator=G().manual_seed(0))
    assert out.z.shape == (4, 3) and out.log_px.shape == (4,) and torch.isfinite(out.log_px).all()
    assert model.log_weights(x, 5).shape == (5, 4)
    y = model.condition.degrade(x, G().manual_seed(0))
    assert y.shape[1:] == model.condition.shape
    restored = model.restore(y)
    assert restored.shape == x.shape and 0 <= restored.min() and restored.max() <= 1
    assert torch.equal(restored, model.restore(y))  # z = 0: deterministic
    assert not torch.equal(restored, model.restore(y, 1.0, G().manual_seed(0)))
    with pytest.raises(ConfigError, match="degraded"):
        model.sample(2)


@pytest.mark.parametrize("stride", [2, 4])
def test_strided_trunk_works_at_lower_resolution(stride):
    model = cvae("downscale", "conv", (3, 16, 16), "gaussian", cvae_stride=stride)
    assert model.decoder.stem.in_channels == 3 * stride**2  # u folded into channels
    x = torch.rand(2, 3, 16, 16)
    out = model(x, generator=G().manual_seed(0))
    assert out.log_px.shape == (2,) and torch.isfinite(out.log_px).all()
    assert model.restore(model.condition.degrade(x)).shape == x.shape
    with pytest.raises(ConfigError, match="cvae_stride 3 must divide the image size 16x16"):
        cvae("downscale", "conv", (3, 16, 16), cvae_stride=3)


def test_cell_width_sets_the_trunk_cells_inner_channels():
    def inner(model):
        return {cell.convs[1].out_channels for cell in model.decoder.cells}
    assert inner(cvae("noise", "conv", (3, 8, 8), "gaussian", cvae_blocks=2)) == {2}  # a quarter of cvae_width 8
    wide = cvae("noise", "conv", (3, 8, 8), "gaussian", cvae_blocks=2, cvae_cell_width=8)
    assert inner(wide) == {8}
    assert wide(torch.rand(2, 3, 8, 8), generator=G().manual_seed(0)).log_px.isfinite().all()


@pytest.mark.parametrize("residual", ["on", "off"])
def test_residual_switch_starts_the_decoder_at_the_degraded_image(residual):
    model = cvae("noise", "conv", (1, 8, 8), "gaussian", condition_residual=residual)
    torch.nn.init.zeros_(model.decoder.out.weight)
    torch.nn.init.zeros_(model.decoder.out.bias)
    noisy = model.condition.observe(torch.rand(2, 1, 8, 8))
    restored = model.restore(noisy)
    assert model.condition.residual == (residual == "on")
    assert torch.allclose(restored, noisy[:, :1] if residual == "on" else torch.zeros_like(restored))


def test_conditions_make_the_degradation_they_name():
    x = torch.rand(2, 1, 8, 8)
    y = cvae("downscale").condition.degrade(x)
    assert torch.allclose(y, F.avg_pool2d(x, 2), atol=0.5 / 255) and torch.equal(y, (y * 255).round() / 255)
    noisy = cvae("noise", condition_noise_sigma=0.25).condition.degrade(x, G().manual_seed(0))
    assert noisy.shape == (2, 2, 8, 8) and torch.all(noisy[:, 1] == 0.25)
    with pytest.raises(DataError, match="shape 1x4x4.*got 1x8x8"):
        cvae("downscale").restore(x)
    with pytest.raises(ConfigError, match="must divide the image size 8x8"):
        cvae("downscale", condition_scale=3)
    with pytest.raises(ConfigError, match="mlp and conv"):
        cvae("jpeg", arch="hvae")


def test_conditional_models_do_not_binarize_by_default():
    assert binarizes(tiny_config()) and not binarizes(tiny_config(condition="jpeg"))


def test_tile_starts_cover_with_overlap():
    for size, tile, overlap in [(100, 16, 4), (17, 16, 4), (16, 16, 4), (64, 8, 2)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == size
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert all(s % 8 == 0 for s in tile_starts(200, 64, 16, align=8)[:-1])


def test_tiles_blend_without_seams():
    image = torch.rand(3, 23, 37)
    nearest = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    torch.testing.assert_close(run_tiled(nearest, image, (8, 8), scale=2), nearest(image))  # translation-equivariant
    bicubic = lambda t: F.interpolate(t, scale_factor=4, mode="bicubic")  # noqa: E731
    flat = run_tiled(bicubic, torch.full((1, 9, 30), 0.3), (7, 7), scale=4)
    assert flat.shape == (1, 36, 120) and torch.allclose(flat, torch.tensor(0.3))
    levels = iter(torch.linspace(0, 1, 100))  # each tile outputs its own constant: the worst case for seams
    jumpy = run_tiled(lambda t: torch.stack([torch.full_like(x, next(levels).item()) for x in t]), image, (8, 8),
                      overlap=4)
    steps = torch.cat([jumpy.diff(dim=1).abs().flatten(), jumpy.diff(dim=2).abs().flatten()])
    assert steps.max() < 0.5 * (jumpy.max() - jumpy.min())


def test_kl_against_a_learned_prior_is_the_gaussian_kl():
    g = G().manual_seed(0)
    q = DiagonalGaussian(torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    p = DiagonalGaussian(torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(q.mean, q.std),
                                                 torch.distributions.Normal(p.mean, p.std))
    torch.testing.assert_close(q.kl_per_dim_to(p), expected)
    torch.testing.assert_close(q.kl_per_dim_to(DiagonalGaussian(torch.zeros(4, 3), torch.zeros(4, 3))),
                               q.kl_per_dim())


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_learned_prior_is_what_restoring_draws_from(arch):
    model = cvae("occlusion", arch, (1, 8, 8), condition_prior="learned", cvae_stride=2 if arch == "conv" else 1)
    x = torch.rand(4, 1, 8, 8)
    y = model.condition.degrade(x, G().manual_seed(0))
    prior = model.conditional_prior(y)
    assert prior.mean.shape == (4, 3) and not torch.equal(prior.mean[0], prior.mean[1])
    torch.testing.assert_close(model.restore(y), model.decode(prior.mean, y))  # deterministic: the prior mean
    z = prior.mean + prior.std * torch.randn(4, 3, generator=G().manual_seed(1))
    torch.testing.assert_close(model.restore(y, 1.0, G().manual_seed(1)), model.decode(z, y))
    out = model(x, generator=G().manual_seed(0), y=y)
    torch.testing.assert_close(out.kl_per_dim, out.posterior.kl_per_dim_to(prior))
    assert torch.isfinite(model.log_weights(x, 5)).all()
    standard = cvae("occlusion", arch, (1, 8, 8), cvae_stride=2 if arch == "conv" else 1)
    assert standard.prior_net is None and sum(p.numel() for p in standard.parameters()) < \
        sum(p.numel() for p in model.parameters())


def test_occlusion_condition_hides_pixels_and_carries_the_mask():
    model = cvae("occlusion", shape=(3, 8, 8), condition_mask_fraction=0.25)
    x = torch.rand(5, 3, 8, 8) + 0.1
    y = model.condition.degrade(x, G().manual_seed(0))
    hidden = y[:, 3:]
    assert y.shape == (5, 4, 8, 8) and set(hidden.unique().tolist()) == {0.0, 1.0}
    assert (hidden.flatten(1).sum(1) == 16).all()  # one 4x4 block: a quarter of each image
    assert torch.equal(y[:, :3], x * (1 - hidden))
    mask = box_mask(8, 8, (1, 2, 3, 4))[None].expand(5, -1, -1, -1)
    assert torch.equal(model.condition.observe(x, mask), torch.cat([x * (1 - mask), mask], 1))


@pytest.mark.parametrize("name", ["plain", "holes"])
def test_inpaint_keeps_known_pixels_exactly(runs, name):
    model = vaekit.load(runs[name]).model
    x = torch.randint(0, 256, (3, 1, 8, 8)).float() / 255
    mask = box_mask(8, 8, (2, 2, 4, 4))[None]
    result = inpaint(model, x, mask, samples=4, proposals=16, generator=G().manual_seed(0))
    known = mask.expand_as(x) == 0
    assert torch.equal(result.mean[known], x[known]) and result.samples.shape == (4, 3, 1, 8, 8)
    assert all(torch.equal(s[known], x[known]) for s in result.samples)
    assert not torch.equal(result.mean[~known], x[~known])
    big = inpaint(model, torch.rand(1, 1, 13, 20), box_mask(13, 20, (5, 3, 9, 6))[None], 2, proposals=8, tiles=True)
    assert big.mean.shape == (1, 1, 13, 20) and big.samples.shape == (2, 1, 1, 13, 20)


def test_inpaint_errors(runs):
    model = vaekit.load(runs["plain"]).model
    with pytest.raises(DataError, match="mask is 4x4 but the image is 8x8"):
        inpaint(model, torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 4, 4))
    with pytest.raises(DataError, match="does not lie inside"):
        box_mask(8, 8, (5, 5, 4, 4))
    with pytest.raises(DataError, match="takes 8x8 images.*got 9x9"):
        inpaint(model, torch.rand(1, 1, 9, 9), torch.zeros(1, 1, 9, 9))
    with pytest.raises(ConfigError, match="trained with --condition downscale, so it cannot inpaint"):
        inpaint(vaekit.load(runs["sr"]).model, torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_conditional_inpaint_mean_is_the_mean_of_its_draws(runs):
    model = vaekit.load(runs["holes"]).model
    x, mask = torch.rand(3, 1, 8, 8), box_mask(8, 8, (2, 1, 5, 4))[None]
    result = inpaint(model, x, mask, samples=6, proposals=6, generator=G().manual_seed(0))
    torch.testing.assert_close(result.mean, result.samples.mean(0))
    again = inpaint(model, x, mask, samples=6, proposals=6, generator=G().manual_seed(0))
    assert torch.equal(result.samples, again.samples) and not torch.equal(result.samples[0], result.samples[1])


def test_upscale(runs):
    run = vaekit.load(runs["sr"])
    low = torch.rand(2, 1, 4, 4)
    high = upscale(run.model, low, 2)
    assert high.shape == (2, 1, 8, 8)
    sampled = upscale(run.model, low, temperature=1.0, generator=G().manual_seed(0))
    assert not torch.equal(high, sampled)
    assert upscale(run.model, torch.rand(1, 1, 7, 10), tiles=True).shape == (1, 1, 14, 20)
    with pytest.raises(ConfigError, match="upscales by 2, not 4"):
        upscale(run.model, low, 4)
    with pytest.raises(DataError, match="takes 4x4 images.*got 7x10"):
        upscale(run.model, torch.rand(1, 1, 7, 10))
    with pytest.raises(DataError, match="grey \\(1-channel\\) images; the input has 3"):
        upscale(run.model, torch.rand(1, 3, 4, 4))
    with pytest.raises(ConfigError, match="plain"):
        upscale(vaekit.load(runs["plain"]).model, low)


@pytest.mark.parametrize("quarter_turns", [True, False])
def test_self_ensemble_turns_every_output_back(quarter_turns):
    """A restoration that adds each pixel's row index: over the flips (and turns) every pixel sees rows
    i and n-1-i (and columns) equally often, so the ensemble adds (n-1)/2 everywhere."""
    x = torch.rand(2, 3, 6, 6 if quarter_turns else 9)
    add_rows = lambda t: t + torch.arange(t.shape[-2], dtype=t.dtype)[:, None]  # noqa: E731
    torch.testing.assert_close(self_ensemble(add_rows, x, quarter_turns), x + 2.5)
    torch.testing.assert_close(self_ensemble(lambda t: t, x, quarter_turns), x)


def test_upscale_and_denoise_self_ensemble(runs):
    sr, noise = vaekit.load(runs["sr"]).model, vaekit.load(runs["noise"]).model
    low = torch.rand(2, 1, 4, 4)
    averaged = upscale(sr, low, ensemble=True)
    assert averaged.shape == (2, 1, 8, 8) and not torch.equal(averaged, upscale(sr, low))
    assert torch.equal(averaged, upscale(sr, low, ensemble=True))
    assert upscale(sr, torch.rand(1, 1, 7, 10), tiles=True, ensemble=True).shape == (1, 1, 14, 20)
    assert denoise(noise, torch.rand(2, 1, 8, 8), ensemble=True).shape == (2, 1, 8, 8)
    with pytest.raises(ConfigError, match="cannot be combined with sampling"):
        upscale(sr, low, temperature=1.0, ensemble=True)


def test_denoise_and_repair(runs):
    x = torch.rand(2, 1, 8, 8)
    noise_model = vaekit.load(runs["noise"]).model
    assert denoise(noise_model, x).shape == (2, 1, 8, 8)
    assert not torch.equal(denoise(noise_model, x, 0.05), denoise(noise_model, x, 0.3))  # it is told sigma
    plain = vaekit.load(runs["plain"]).model
    assert denoise(plain, x).shape == denoise(plain, x, 0.3, proposals=8).shape == (2, 1, 8, 8)
    assert repair(vaekit.load(runs["jpeg"]).model, x).shape == repair(plain, x).shape == (2, 1, 8, 8)
    with pytest.raises(ConfigError, match="trained with --condition noise, so it cannot repair"):
        repair(noise_model, x)


def test_estimate_sigma():
    noisy = 0.5 + 0.1 * torch.randn(3, 1, 64, 64, generator=G().manual_seed(0))
    assert torch.allclose(estimate_sigma(noisy), torch.tensor(0.1), atol=0.01)


def test_conditional_checkpoint_round_trip_and_report(runs):
    run = vaekit.load(runs["sr"])
    assert isinstance(run.model, ConditionalVAE) and run.config.model.condition == "downscale"
    low = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(vaekit.load(runs["sr"]).model.restore(low), run.model.restore(low))
    assert (runs["sr"] / "restorations.png").stat().st_size > 0
    assert "restorations.png" in (runs["sr"] / "index.html").read_text()


def test_eval_binarizes_as_the_report_does(runs, capsys):
    """A restoration model is scored on the grey images it restores; an unconditional Bernoulli
    model on binarized ones, even one trained on the grey pixels (config.scored_binarized)."""
    for name, binarized in (("sr", False), ("plain", True)):
        assert main(["eval", str(runs[name]), "--limit", "50"]) == 0
        assert json.loads(capsys.readouterr().out)["binarized"] is binarized


def test_random_crops():
    images = [torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8), torch.zeros(3, 16, 16, dtype=torch.uint8)]
    crops = random_crops(images, 16, 5, G().manual_seed(0))
    assert crops.shape == (5, 3, 16, 16) and crops.dtype == torch.uint8 and crops[1].max() == 0
    with pytest.raises(DataError, match="smaller than"):
        random_crops(images, 17, 2, G().manual_seed(0))


def test_random_crops_scales_and_orientations():
    ramp = torch.arange(32, dtype=torch.uint8).repeat(3, 32, 1) * 8  # columns 0, 8, ..., 248
    images = [ramp]
    half = random_crops(images, 16, 4, G().manual_seed(0), scales=(0.5,))
    assert half.shape == (4, 3, 16, 16)  # the 16x16 shrunk image itself: steps of about 16
    assert (half[0, 0, 0, 1:].int() - half[0, 0, 0, :-1].int()).float().mean().item() == pytest.approx(16, abs=1.5)
    both = random_crops(images, 16, 4, G().manual_seed(0), scales=(1.0, 0.5))
    steps = [(c[0, 0, 1:].int() - c[0, 0, :-1].int()).float().mean().item() for c in both]
    assert steps[0] == pytest.approx(8) and steps[1] == pytest.approx(16, abs=1.5)  # alternating scales
    turned = random_crops(images, 32, 64, G().manual_seed(0), orientations=True)
    assert len({tuple(c[0].flatten().tolist()) for c in turned}) == 4  # a ramp has 4 distinct orientations
    assert all(sorted(c.flatten().tolist()) == sorted(ramp.flatten().tolist()) for c in turned)
    with pytest.raises(DataError, match="at scale 0.25"):
        random_crops(images, 16, 2, G().manual_seed(0), scales=(1.0, 0.25))
    with pytest.raises(DataError, match="scales"):
        random_crops(images, 16, 2, G().manual_seed(0), scales=(1.5,))


def save_png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_cli_end_to_end(runs, tmp_path):
    rng = np.random.default_rng(0)
    digit = save_png(tmp_path / "d.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    assert main(["inpaint", str(runs["plain"]), digit, "--box", "2,2,4,4", "--samples", "2", "--proposals", "8",
                 "-o", str(tmp_path / "filled.png")]) == 0
    filled = np.asarray(Image.open(tmp_path / "filled.png"))
    known = np.ones((8, 8), bool)
    known[2:6, 2:6] = False
    assert np.array_equal(filled[known], np.asarray(Image.open(digit))[known])
    assert (tmp_path / "filled_sample2.png").exists()
    assert main(["inpaint", str(runs["holes"]), digit, "--box", "2,2,4,4", "--samples", "1",
                 "-o", str(tmp_path / "cfilled.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cfilled.png"))[known], np.asarray(Image.open(digit))[known])

    folder = tmp_path / "low"
    folder.mkdir()
    for i in range(3):
        save_png(folder / f"l{i}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    assert main(["upscale", str(runs["sr"]), str(folder), "--scale", "2", "-o", str(tmp_path / "up")]) == 0
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["l0.png", "l1.png", "l2.png"]
    assert Image.open(tmp_path / "up/l0.png").size == (8, 8)
    assert main(["upscale", str(runs["sr"]), str(folder / "l0.png"), "--self-ensemble", "-o",
                 str(tmp_path / "up8.png")]) == 0
    assert Image.open(tmp_path / "up8.png").size == (8, 8)
    assert main(["denoise", str(runs["noise"]), digit, "--sigma", "0.2", "-o", str(tmp_path / "dn.png")]) == 0
    assert main(["repair", str(runs["jpeg"]), digit, "--sample", "-o", str(tmp_path / "rp.png")]) == 0
    assert Image.open(tmp_path / "rp.png").size == (8, 8)


def test_cli_errors_are_one_sentence(runs, tmp_path, capsys):
    rgb = save_png(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.uint8))
    grey = save_png(tmp_path / "g.png", np.zeros((8, 8), np.uint8))
    mask = save_png(tmp_path / "m.png", np.zeros((5, 5), np.uint8))
    cases = [(["denoise", str(runs["plain"]), rgb, "-o", str(tmp_path / "o.png")], "colour image"),
             (["upscale", str(runs["sr"]), grey, "-o", str(tmp_path / "o.png")], "takes 4x4 images"),
             (["inpaint", str(runs["plain"]), grey, "--mask", mask, "-o", str(tmp_path / "o.png")], "mask is 5x5"),
             (["inpaint", str(runs["plain"]), grey, "--box", "1,2", "-o", str(tmp_path / "o.png")], "x,y,w,h"),
             (["repair", str(runs["sr"]), grey, "-o", str(tmp_path / "o.png")], "cannot repair"),
             (["upscale", str(runs["sr"]), str(tmp_path / "none.png"), "-o", str(tmp_path / "o.png")], "no image")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--sigma: must be above 0" in usage_error_of(
        capsys, ["denoise", str(runs["noise"]), grey, "--sigma", "-1", "-o", str(tmp_path / "o.png")])
    assert not (tmp_path / "o.png").exists()


def test_a_folder_is_restored_whole_or_not_at_all(runs, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    save_png(folder / "a.png", np.zeros((8, 8), np.uint8))
    (folder / "b.png").write_bytes(b"\x89PNG not really")  # read after a.png was denoised
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.png").write_bytes(b"kept")
    assert main(["denoise", str(runs["noise"]), str(folder), "-o", str(tmp_path / "out")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no temporary folder left
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.png"]  # a.png's output did not arrive
    (folder / "b.png").unlink()
    assert main(["denoise", str(runs["noise"]), str(folder), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "old.png"]
    Image.open(folder / "a.png").save(folder / "a.bmp")  # would also be written to a.png
    assert main(["denoise", str(runs["noise"]), str(folder), "-o", str(tmp_path / "out2")]) == 2
    assert "two images named a" in capsys.readouterr().err and not (tmp_path / "out2").exists()
    (folder / "a.bmp").unlink()
    (folder / "b.png").write_bytes(b"\x89PNG not really")
    assert main(["denoise", str(runs["noise"]), str(folder), "-o", str(tmp_path / "new/deeper/out")]) == 2
    assert not (tmp_path / "new").exists()  # the folders made for the output went with it


def test_cli_crops(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(photos / "a.png", np.zeros((30, 40, 3), np.uint8))
    save_png(photos / "b.png", np.full((20, 25, 3), 200, np.uint8))
    assert main(["crops", str(photos), "-o", str(tmp_path / "c.npy"), "--size", "16", "--count", "6"]) == 0
    assert main(["crops", str(photos), "-o", str(tmp_path / "c.png"), "--size", "16", "--count", "6"]) == 2
    assert not (tmp_path / "c.png").exists()  # a .npy under another name would not load as a dataset
    crops = np.load(tmp_path / "c.npy")
    assert crops.shape == (6, 3, 16, 16) and crops.dtype == np.uint8
    assert vaekit.load_dataset(str(tmp_path / "c.npy")).images.shape == (6, 3, 16, 16)
    assert main(["crops", str(photos), "-o", str(tmp_path / "m.npy"), "--size", "16", "--count", "4",
                 "--scales", "1,0.8", "--orientations"]) == 0
    assert np.load(tmp_path / "m.npy").shape == (4, 3, 16, 16)


@pytest.mark.parametrize("scales, message", [("1,x", "--scales must be comma-separated numbers"),
                                             ("1,0.5", "smaller than the 16x16 crops"), ("0", "(0, 1]")])
def test_cli_crops_bad_scales(tmp_path, capsys, scales, message):
    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(photos / "a.png", np.zeros((20, 25, 3), np.uint8))
    assert main(["crops", str(photos), "-o", str(tmp_path / "c.npy"), "--size", "16", "--scales", scales]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "c.npy").exists()
