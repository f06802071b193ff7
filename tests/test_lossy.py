"""Lossy transform coding: decoded images equal the codec's own reconstruction, file sizes match
the entropy model's estimate, any image size, thread-count independence, and a clean
CompressedFileError for every damaged or mismatched file."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vaekit.cli.main import main
from vaekit.codecs import container, lossless, lossy, refine
from vaekit.codecs.container import CompressedFileError
from vaekit.config import Config
from vaekit.engine.checkpoint import Run
from vaekit.errors import ConfigError, DataError, VaekitError
from vaekit.losses import rate_distortion_loss
from vaekit.models.entropy import SCALE_TABLE, FactorizedDensity, scale_index
from vaekit.models.transform import lowest_dct_bases
from vaekit.registry import build_model
from conftest import error_of


def tiny_codec(kind="hyperprior", channels=3, seed=0, lmbda="0.005,0.05", shortcut="none", latent=12) -> Run:
    config = Config().replace({"model": kind, "image_shape": (channels, 64, 64), "codec_channels": 8,
                               "codec_latent": latent, "lmbda": lmbda, "codec_shortcut": shortcut})
    torch.manual_seed(seed)
    return Run(Path("."), config, build_model(config.model).eval(), [])


def smooth_images(n, size=(64, 64), channels=3, seed=0) -> torch.Tensor:
    """Photo-like test images: coarse noise upsampled, uint8 (n, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, size[0] // 8 + 1, size[1] // 8 + 1, generator=g)
    return (F.interpolate(coarse, size=size, mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)


def names(n):
    return [f"{i}.png" for i in range(n)]


@pytest.fixture(scope="module")
def trained_codec():
    """A hyperprior codec trained for a few steps on smooth images, so its entropy model means something."""
    run = tiny_codec()
    model, x = run.model.train(), smooth_images(16).float() / 255
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    lambdas = torch.tensor(model.lambdas)
    for step in range(40):
        q = torch.randint(2, (len(x),), generator=g)
        loss = rate_distortion_loss(model(x, q, g), x, lambdas[q]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Run(Path("."), run.config, model.eval(), [])


@pytest.mark.parametrize("kind, shortcut", [("hyperprior", "none"), ("factorized", "none"), ("hyperprior", "dct")])
def test_decoded_images_equal_the_codecs_own_reconstruction(kind, shortcut):
    run = tiny_codec(kind, shortcut=shortcut)
    images = [smooth_images(1, (37, 51))[0], smooth_images(1, (70, 20), seed=1)[0]]
    box = container.unpack(container.pack(lossy.compress(run, images, ["a.png", "b.png"], quality=1)))
    decoded, decoded_names = lossy.decompress(run, box)
    coder = lossy.LossyCoder(run.model)
    assert decoded_names == ["a.png", "b.png"]
    for image, out in zip(images, decoded):
        assert out.shape == image.shape and out.dtype == torch.uint8
        assert torch.equal(out, coder.reconstruction(image, 0))
        forward = run.model.reconstruct(image.float()[None] / 255, 0)[0] * 255  # the float forward pass
        assert (forward - out.float()).abs().max() <= 1.0


@pytest.mark.parametrize("size", [(1, 1), (5, 17), (64, 64), (65, 130)])
def test_any_image_size_is_padded_and_cropped(size):
    run = tiny_codec()
    image = smooth_images(1, size)[0] if min(size) > 8 else torch.randint(0, 256, (3, *size), dtype=torch.uint8)
    decoded, _ = lossy.decompress(run, lossy.compress(run, [image], ["x.png"]))
    assert decoded[0].shape == image.shape
    assert torch.equal(decoded[0], lossy.LossyCoder(run.model).reconstruction(image, 1))


def test_file_rate_is_close_to_the_models_estimate(trained_codec):
    """The entropy coder spends what the entropy model says (scale table and coder overhead are small)."""
    x = smooth_images(4, seed=3)
    for q in (0, 1):
        box = lossy.compress(trained_codec, list(x), names(4), quality=q + 1)
        file_bits = 8 * len(box.payload)
        estimated_bits = lossy.estimate(trained_codec.model, x.float() / 255, q)["bpp"] * x[0, 0].numel() * len(x)
        # + 96 bits: the ANS coder's final 64-bit state and the padding to whole 32-bit words
        assert abs(file_bits - estimated_bits) <= 0.05 * estimated_bits + 96, (q, file_bits, estimated_bits)
    low, high = (len(lossy.compress(trained_codec, list(x), names(4), quality=q).payload) for q in (1, 2))
    assert low < high  # quality levels differ in rate


def _padded(model, image):
    x = image.float()[None] / 255
    return F.pad(x, (0, -x.shape[-1] % model.factor, 0, -x.shape[-2] % model.factor), mode="replicate")


def test_refinement_lowers_the_exact_objective_and_the_decoder_is_unchanged(trained_codec):
    model, image, q = trained_codec.model, smooth_images(1, (48, 40), seed=5)[0], 1
    x, lam = _padded(model, image), model.lambdas[q] * 255**2
    with torch.no_grad():
        y0 = model.analysis(x, torch.tensor([q]))
        before = refine._objective(model, x, (48, 40), y0, model.h_a(y0), torch.tensor([q]), lam)
        y, z = refine.refine_latents(model, x, (48, 40), q, steps=20)
        after = refine._objective(model, x, (48, 40), y, z, torch.tensor([q]), lam)
    assert after < 0.99 * before, (before, after)
    assert all(p.requires_grad for p in model.parameters())  # the weights are frozen only while it runs
    coder = lossy.LossyCoder(model)
    decoded, _ = lossy.decompress(trained_codec, lossy.compress(trained_codec, [image], ["a.png"], q + 1,
                                                                refine_steps=20))
    assert torch.equal(decoded[0], coder.pixels(coder.symbols(image, q, refine_steps=20), q, (48, 40)))
    assert not torch.equal(decoded[0], coder.reconstruction(image, q))


def test_refinement_keeps_the_initial_latents_when_steps_make_them_worse(trained_codec):
    model, image = trained_codec.model, smooth_images(1, (32, 32), seed=6)[0]
    x = _padded(model, image)
    with torch.no_grad():
        y0 = model.analysis(x, torch.tensor([0]))
    y, z = refine.refine_latents(model, x, (32, 32), 0, steps=3, lr=50.0)  # steps of 50 quantization bins
    assert torch.equal(y, y0) and torch.equal(z, model.h_a(y0).detach())


def test_refinement_refuses_images_too_big_to_hold(trained_codec, monkeypatch):
    monkeypatch.setattr(refine, "MAX_REFINE_PIXELS", 64 * 64 - 1)
    with pytest.raises(DataError, match="without --refine"):
        lossy.compress(trained_codec, [smooth_images(1, (64, 64))[0]], ["big.png"], refine_steps=2)


def test_dct_shortcut_starts_as_the_dct():
    """With as many latents as pixels in a 16x16 block, the shortcut is a complete orthonormal
    transform and the untrained codec (nonlinear branches at zero) inverts it exactly; with fewer,
    it keeps the lowest frequencies of luma first, so a constant image comes back exactly and a
    smooth one (colours moving together, as in photos) far closer than by its 16x16 block means."""
    bases = lowest_dct_bases(3, 96).flatten(1)
    torch.testing.assert_close(bases @ bases.T, torch.eye(96), atol=1e-5, rtol=0)
    q = torch.tensor([0])
    complete = tiny_codec(channels=1, shortcut="dct", latent=256).model
    x = torch.rand(1, 1, 64, 48, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(complete.synthesis(complete.analysis(x, q), q), x, atol=1e-5, rtol=0)
    model = tiny_codec(shortcut="dct").model
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(model.synthesis(model.analysis(flat, q), q), flat, atol=1e-5, rtol=0)
    grey = F.interpolate(torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(0)), size=(64, 64),
                         mode="bilinear", align_corners=False)
    smooth = grey * torch.tensor([0.9, 0.8, 0.6])[:, None, None] + 0.05
    block_means = F.avg_pool2d(smooth, 16).repeat_interleave(16, 2).repeat_interleave(16, 3)
    error = (model.synthesis(model.analysis(smooth, q), q) - smooth).abs().mean()
    assert error < 0.25 * (smooth - block_means).abs().mean()


@pytest.mark.parametrize("shortcut", ["none", "dct"])
def test_tiles_give_the_whole_image_result_without_seams(shortcut):
    """The tile margin exceeds the transforms' receptive fields, so tiling changes nothing."""
    model = tiny_codec(shortcut=shortcut).model
    q = torch.tensor([1])
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    whole = model.analysis(x, q)
    assert torch.allclose(lossy.tiled(lambda t: model.analysis(t, q), x, 16, 1, tile=3, margin=2), whole, atol=1e-5)
    y = torch.randn(1, 12, 8, 12, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lossy.tiled(lambda t: model.synthesis(t, q), y, 1, 16, tile=3, margin=2),
                          model.synthesis(y, q), atol=1e-5)
    image = smooth_images(1, (70, 100))[0]
    small_tiles = lossy.LossyCoder(model, tile=1).reconstruction(image, 1)
    assert (small_tiles.float() - lossy.LossyCoder(model).reconstruction(image, 1).float()).abs().max() <= 1


def test_encode_with_two_threads_decode_with_one(trained_codec):
    images = list(smooth_images(3, (96, 80), seed=5))
    torch.set_num_threads(2)
    try:
        box = lossy.compress(trained_codec, images, names(3))
    finally:
        torch.set_num_threads(1)
    decoded, _ = lossy.decompress(trained_codec, container.unpack(container.pack(box)))
    coder = lossy.LossyCoder(trained_codec.model)
    assert all(torch.equal(d, coder.reconstruction(i, 1)) for d, i in zip(decoded, images))


def test_scales_map_to_a_fixed_table():
    s = torch.tensor([0.0, 0.11, 0.12, 1.0, 300.0], dtype=torch.float64)
    idx = scale_index(s)
    assert idx[0] == 0 and idx[-1] == len(SCALE_TABLE) - 1
    assert torch.all(SCALE_TABLE[idx[1:-1]] >= s[1:-1])


def test_factorized_table_is_a_distribution():
    table = FactorizedDensity(4).double().pmf_table(20)
    assert table.shape == (4, 41) and torch.allclose(table.sum(1), torch.ones(4, dtype=torch.float64))


@pytest.fixture(scope="module")
def small_file():
    run = tiny_codec()
    return run, container.pack(lossy.compress(run, [smooth_images(1, (20, 30))[0]], ["a.png"]))


def test_every_truncation_fails_cleanly(small_file):
    run, data = small_file
    for cut in sorted({0, 1, 7, 8, 9, 12, 31, 32, len(data) // 2, len(data) - 17, len(data) - 1}):
        with pytest.raises(CompressedFileError):
            lossy.decompress(run, container.unpack(data[:cut]))


def test_every_flipped_byte_fails_cleanly(small_file):
    run, data = small_file
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x5A
        with pytest.raises(CompressedFileError):
            lossy.decompress(run, container.unpack(bytes(damaged)))


def test_damaged_payload_with_a_forged_checksum_is_caught(small_file):
    """Past the file checksum, the coder's end state and the symbol checksum still catch damage."""
    run, data = small_file
    body = data[:-16]
    for i in range(len(body) - 12, len(body)):
        damaged = bytearray(body)
        damaged[i] ^= 0x01
        with pytest.raises(CompressedFileError):
            lossy.decompress(run, container.unpack(bytes(damaged) + container.checksum(bytes(damaged))))


def test_version_1_files_are_still_read(small_file):
    """Version 1 also stored the codec's kind, channels, lambda and table constants."""
    from test_codecs import as_version_1

    run, data = small_file
    box = container.unpack(data)
    old = container.Container(box.codec, box.fingerprint, {
        **box.meta, "kind": "hyperprior", "lmbda": run.model.lambdas[0], "channels": 3,
        "scale_table": [0.11, 256.0, 64], "grid_bits": 12, "supports": [64, 256]}, box.payload)
    decoded, names = lossy.decompress(run, container.unpack(as_version_1(old, lossy.run_fingerprint(run))))
    assert names == ["a.png"] and torch.equal(decoded[0], lossy.decompress(run, box)[0][0])


def test_wrong_model_and_wrong_codec_are_named(small_file):
    run, data = small_file
    with pytest.raises(CompressedFileError, match="another model"):
        lossy.decompress(tiny_codec(seed=1), container.unpack(data))
    with pytest.raises(CompressedFileError, match="lossy"):
        lossless.decompress(run, container.unpack(data))
    with pytest.raises(VaekitError, match="not a lossy codec"):
        from test_codecs import tiny_run

        lossy.compress(tiny_run(), [torch.zeros(1, 8, 8, dtype=torch.uint8)], ["a.png"])
    with pytest.raises(VaekitError, match="quality levels 1..2"):
        lossy.compress(run, [smooth_images(1)[0]], ["a.png"], quality=3)


def test_rate_distortion_loss_is_rate_plus_weighted_mse():
    run = tiny_codec()
    x = smooth_images(2).float() / 255
    out = run.model.train()(x, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    bpp = out.rate_bits / (64 * 64)
    terms = rate_distortion_loss(out, x, torch.tensor([0.0, 0.0]))
    assert torch.isclose(terms.loss, bpp.mean())
    assert torch.isclose(terms.kl, (out.rate_bits * math.log(2)).mean()) and terms.recon == 0
    mse = ((out.x_hat - x) ** 2).flatten(1).mean(1)
    weighted = rate_distortion_loss(out, x, torch.tensor([0.01, 0.01]))
    assert torch.isclose(weighted.loss, (bpp + 0.01 * 255**2 * mse).mean(), rtol=1e-5)
    assert torch.isclose(weighted.neg_elbo, weighted.loss * 64 * 64 * math.log(2), rtol=1e-5)


def test_lambda_list_parses_and_is_checked():
    assert Config().replace({"lmbda": "0.001,0.01"}).model.lmbda == (0.001, 0.01)
    with pytest.raises(ConfigError, match="list of numbers"):
        Config().replace({"lmbda": "a,b"})
    with pytest.raises(ConfigError, match="lmbda must be positive"):
        build_model(Config().replace({"model": "hyperprior", "image_shape": (1, 8, 8), "lmbda": "0,1"}).model)


@pytest.fixture(scope="module")
def trained_codec_run(tmp_path_factory):
    """A tiny codec trained with `vaekit.train` on the built-in digits (report included)."""
    import vaekit

    out = tmp_path_factory.mktemp("runs") / "codec"
    config = {"data": {"data": "digits", "limit": 64, "val_fraction": 0.1},
              "model": {"arch": "factorized", "codec_channels": 8, "codec_latent": 8, "lmbda": (0.01, 0.1)},
              "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3}}
    return vaekit.train(config, out, progress=False)


def test_train_and_cli_round_trip(trained_codec_run, tmp_path, capsys):
    run = trained_codec_run
    assert (run.path / "reconstructions.png").is_file() and (run.path / "metrics.json").is_file()
    folder = tmp_path / "in"
    folder.mkdir()
    for i, size in enumerate([(8, 8), (13, 9)]):
        Image.fromarray(smooth_images(1, size, channels=1, seed=i)[0, 0].numpy()).save(folder / f"img{i}.png")
    Image.fromarray(np.full((6, 5, 3), 200, np.uint8)).save(folder / "rgb.png")  # a lossy codec converts it
    out = tmp_path / "d.vkz"
    assert main(["compress", str(run.path), str(folder), "-o", str(out), "--quality", "1"]) == 0
    printed = capsys.readouterr().out
    assert "bpp" in printed and f"{out.stat().st_size} bytes" in printed
    refined = tmp_path / "r.vkz"
    assert main(["compress", str(run.path), str(folder), "-o", str(refined), "--quality", "1", "--refine", "3"]) == 0
    assert main(["decompress", str(refined), "-o", str(tmp_path / "refined")]) == 0
    capsys.readouterr()
    assert "0 or more" in error_of(capsys, ["compress", str(run.path), str(folder), "-o", str(refined), "--refine",
                                            "-1"])
    assert main(["decompress", str(out), "-o", str(tmp_path / "out"), "--threads", "1"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "img1.png")).shape == (13, 9)
    assert np.asarray(Image.open(tmp_path / "out" / "rgb.png")).shape == (6, 5)
    assert "quality levels 1..2" in error_of(capsys, ["compress", str(run.path), str(folder), "-o",
                                                      str(tmp_path / "q.vkz"), "--quality", "5"])
    assert "drop --lossless" in error_of(capsys, ["compress", str(run.path), str(folder), "-o",
                                                  str(tmp_path / "q.vkz"), "--lossless"])
    out.write_bytes(out.read_bytes()[:-3])
    assert "truncated or corrupted" in error_of(capsys, ["decompress", str(out), "-o", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "q.vkz").exists()
    for command in (["sample", str(run.path), "-o", str(tmp_path / "s.png")], ["eval", str(run.path)],
                    ["upscale", str(run.path), str(folder), "-o", str(tmp_path / "u")]):
        assert "holds a lossy codec" in error_of(capsys, command)
