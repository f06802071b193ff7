"""Lossless bits-back coding: exact round trips, rates near the negative ELBO, thread-count
independence, and a clean CompressedFileError for every damaged or mismatched file."""
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli.main import main
from vaekit.codecs import ans, container, lossless, seeds
from vaekit.codecs.bitsback import BitsBackCoder
from vaekit.codecs.container import CompressedFileError
from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import binarize_once
from vaekit.engine.checkpoint import Run
from vaekit.errors import DataError, VaekitError
from vaekit.metrics import evaluate
from vaekit.registry import build_model
from conftest import error_of


def tiny_run(likelihood="bernoulli", arch="mlp", shape=(1, 8, 8), seed=0, stride=1) -> Run:
    config = Config().replace({"model": arch, "likelihood": likelihood, "image_shape": shape, "latent_dim": 3,
                               "hidden_dims": (16,) if arch == "mlp" else (4, 8), "fc_dim": 16,
                               "mixture_components": 2, "hvae_width": 8, "hvae_middle": 4, "hvae_groups": (1, 2),
                               "hvae_encoder_blocks": 1, "hvae_stride": stride})
    torch.manual_seed(seed)
    return Run(Path("."), config, build_model(config.model).eval(), [])


def random_images(n, shape=(1, 8, 8), binary=False, seed=0):
    x = torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return (x > 127).to(torch.uint8) * 255 if binary else x


def names(n):
    return [f"{i}.png" for i in range(n)]


@pytest.fixture(scope="module")
def digits_binary():
    return (binarize_once(load_dataset("digits", "test").images[:60]) * 255).to(torch.uint8)


def test_ans_codecs_pop_what_they_push():
    rng = np.random.default_rng(0)
    probs = rng.random((50, 7))
    p_one = rng.random(30)
    coder = ans.AnsCoder(ans.initial_words(3))
    start = coder.get_compressed()
    pushed = [(ans.categorical(probs), rng.integers(0, 7, 50)), (ans.bernoulli(p_one), rng.integers(0, 2, 30)),
              (ans.uniform(1024, 20), rng.integers(0, 1024, 20))]
    for codec, symbols in pushed:
        codec.push(coder, symbols)
    for codec, symbols in reversed(pushed):
        assert np.array_equal(codec.pop(coder), symbols)
    assert np.array_equal(coder.get_compressed(), start)


def test_on_grid_rounds_tiny_differences_away():
    v = np.array([0.1234567, -3.3, 7.0])
    assert np.array_equal(ans.on_grid(v), ans.on_grid(v + 1e-13))
    assert np.all(np.abs(ans.on_grid(v) - v) <= 2.0**-13)


@pytest.mark.parametrize("likelihood,arch,shape,stride", [("bernoulli", "mlp", (1, 8, 8), 1),
                                                          ("logistic-mixture", "conv", (3, 5, 6), 1),
                                                          ("logistic-mixture", "mlp", (1, 8, 8), 1),
                                                          ("bernoulli", "hvae", (1, 8, 8), 1),
                                                          ("logistic-mixture", "hvae", (3, 6, 5), 1),
                                                          ("bernoulli", "hvae", (1, 8, 8), 2)])
def test_random_images_round_trip_exactly(likelihood, arch, shape, stride):
    run = tiny_run(likelihood, arch, shape, stride=stride)
    N = 100  # enough that the seed images leave some for bits-back
    x = random_images(N, shape, binary=likelihood == "bernoulli")
    box = container.unpack(container.pack(lossless.compress(run, x, names(N))))
    decoded, decoded_names = lossless.decompress(run, box)
    assert torch.equal(decoded, x) and decoded_names == names(N)
    bits_back = sum(n * times for n, times in box.meta["chunks"])
    assert box.meta["count"] == N and 1 <= box.meta["seed_images"] < N and bits_back == N - box.meta["seed_images"]


def test_names_round_trip_and_numbered_ones_are_stored_as_a_pattern():
    numbered = [f"mnist-test-{i:05d}.png" for i in range(12)]
    assert lossless.pack_names(numbered) == {"prefix": "mnist-test-", "width": 5, "suffix": ".png"}
    for names_ in (numbered, ["b.png", "a.png"], ["x1.png", "x2.png"], ["0.png"], []):
        assert lossless.unpack_names(lossless.pack_names(names_), len(names_)) == names_


def test_trained_model_codes_real_digits_near_their_negative_elbo(trained_run, digits_binary):
    """Bits back works: the chained stream costs about the negative ELBO per image, far less than
    paying for the latents in full (latent_dim * latent_bits bits each)."""
    x = digits_binary
    box = lossless.compress(trained_run, x, names(len(x)))
    assert torch.equal(lossless.decompress(trained_run, box)[0], x)
    with pytest.raises(DataError, match="plain PNG names"):  # decompress writes them, so it refuses others
        lossless.compress(trained_run, x[:2], ["a.png", "sub/b.png"])
    m = box.meta["seed_images"]
    assert 1 <= m < len(x) // 2
    seed_bits = seeds.BinaryContextSeed().bits(x[:m]).sum()
    neg_elbo_bits = evaluate(trained_run.model, x[m:].float() / 255, progress=False)["neg_elbo_nats"] / math.log(2)
    bits_back_per_image = (8 * len(box.payload) - seed_bits) / (len(x) - m)
    assert bits_back_per_image < neg_elbo_bits * 1.1 + 2
    assert bits_back_per_image < neg_elbo_bits + trained_run.model.latent_dim * box.meta["latent_bits"] * 0.8


def test_the_seed_images_fill_the_stack_the_first_chunk_pops_from(trained_run, digits_binary):
    """Just enough first images go to the seed codec: their bits cover the first chunk's latents."""
    coder = BitsBackCoder(trained_run.model)
    _, chunks, m = coder.encode(digits_binary)
    need = 1.25 * coder.estimated_bits(digits_binary[:1]).sum() + 64
    seed_bits = np.cumsum(seeds.BinaryContextSeed().bits(digits_binary))
    assert seed_bits[m - 1] >= need and (m == 1 or need > seed_bits[m - 2])
    assert sum(chunks) == len(digits_binary) - m


def test_files_from_before_the_seed_codec_still_decode():
    """Such files started from random words and had no seed images; the decoder finds the words."""
    run, x = tiny_run(), random_images(9, binary=True)
    coder = BitsBackCoder(run.model)
    stack = ans.AnsCoder(ans.initial_words(40))
    with torch.no_grad():
        coder.chunk_codec(9).push(stack, x)
    meta = {k: v for k, v in lossless.compress(run, x, names(9)).meta.items() if not k.startswith("seed_")}
    old = container.Container("bits-back", lossless.run_fingerprint(run), {**meta, "initial_words": 40,
                              "chunks": [[9, 1]]}, ans.to_bytes(stack.get_compressed()))
    assert torch.equal(lossless.decompress(run, container.unpack(container.pack(old)))[0], x)


@pytest.mark.parametrize("seed, binary", [(seeds.BinaryContextSeed(), True), (seeds.LzmaSeed(), False)])
def test_seed_codecs_pop_what_they_push(seed, binary):
    x = random_images(6, (2, 5, 7), binary=binary)
    coder = ans.AnsCoder(ans.initial_words(2))
    start = coder.get_compressed()
    seed.codec(6, (2, 5, 7)).push(coder, x)
    assert torch.equal(seed.codec(6, (2, 5, 7)).pop(coder), x)
    assert np.array_equal(coder.get_compressed(), start)


def test_context_model_codes_real_digits_compactly_at_its_estimated_cost(digits_binary):
    seed, x = seeds.BinaryContextSeed(), digits_binary
    coder = ans.AnsCoder()
    seed.codec(len(x), tuple(x.shape[1:])).push(coder, x)
    estimate = seed.bits(x).sum()
    assert abs(coder.num_bits() - estimate) < 0.01 * estimate + 64
    ones = (x > 0).double().mean()
    order_0_bits = -(ones * ones.log2() + (1 - ones) * (1 - ones).log2()) * x.numel()
    assert coder.num_bits() < 0.9 * order_0_bits  # the neighbours tell it something
    assert torch.equal(seed.codec(len(x), tuple(x.shape[1:])).pop(coder), x)


def test_context_seed_takes_the_fewest_images_that_hold_the_bits():
    x = (binarize_once(load_dataset("digits", "test").images) * 255).to(torch.uint8)  # 297 images
    seed, n = seeds.BinaryContextSeed(), len(x)
    cumulative = np.cumsum(seed.bits(x))
    for bits in (1, cumulative[63], cumulative[64] - 1, cumulative[200], 10**9):
        m = seed.count_for(x, bits)
        assert m == n or cumulative[m - 1] >= bits
        assert m == 1 or cumulative[m - 2] < bits
    assert seed.count_for(x[:0], 100) == 0


def test_lzma_seed_takes_the_fewest_images_that_hold_the_bits():
    seed, x = seeds.LzmaSeed(), random_images(50, (1, 8, 8))
    for bits in (1, 3000, 20000, 10**9):
        m = seed.count_for(x, bits)
        assert m == 50 or 8 * len(seeds._lzma(x[:m])) >= bits
        assert m == 1 or 8 * len(seeds._lzma(x[:m - 1])) < bits
    assert seed.count_for(x[:0], 100) == 0


def test_encode_with_two_threads_decode_with_one():
    run = tiny_run("logistic-mixture", "conv", (1, 12, 12))
    x = random_images(40, (1, 12, 12))
    torch.set_num_threads(2)
    try:
        box = lossless.compress(run, x, names(40))
    finally:
        torch.set_num_threads(1)
    assert torch.equal(lossless.decompress(run, box)[0], x)


def test_single_image_and_empty_payload_edge_cases():
    run = tiny_run()
    x = random_images(1, binary=True)
    assert torch.equal(lossless.decompress(run, lossless.compress(run, x, ["a.png"]))[0], x)


@pytest.fixture(scope="module")
def small_file():
    run = tiny_run()
    x = random_images(5, binary=True)
    return run, x, container.pack(lossless.compress(run, x, names(5)))


def test_every_truncation_fails_cleanly(small_file):
    run, _, data = small_file
    for cut in sorted({0, 1, 7, 8, 9, 12, 31, 32, len(data) // 2, len(data) - 17, len(data) - 1}):
        with pytest.raises(CompressedFileError):
            lossless.decompress(run, container.unpack(data[:cut]))


def test_every_flipped_byte_fails_cleanly(small_file):
    run, _, data = small_file
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x5A
        with pytest.raises(CompressedFileError):
            lossless.decompress(run, container.unpack(bytes(damaged)))


def test_damaged_payload_with_a_forged_checksum_never_gives_wrong_pixels(small_file):
    """Past the file checksum, the stack's final state and the pixel checksum still catch damage."""
    run, x, data = small_file
    body = data[:-16]
    for i in range(len(body) - 8, len(body)):
        damaged = bytearray(body)
        damaged[i] ^= 0x01
        forged = bytes(damaged) + container.checksum(bytes(damaged))
        with pytest.raises(CompressedFileError):
            lossless.decompress(run, container.unpack(forged))


@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic-mixture"])
def test_damage_to_the_seed_images_at_the_bottom_of_the_stack_is_caught(likelihood):
    run = tiny_run(likelihood)
    x = random_images(30, binary=likelihood == "bernoulli")
    box = lossless.compress(run, x, names(30))
    assert box.meta["seed_images"] >= 1
    for i in range(8):
        damaged = bytearray(box.payload)
        damaged[i] ^= 0x10
        with pytest.raises(CompressedFileError):
            lossless.decompress(run, container.Container(box.codec, box.fingerprint, box.meta, bytes(damaged)))


def test_wrong_model_and_unknown_version_are_named(small_file):
    run, _, data = small_file
    with pytest.raises(CompressedFileError, match="another model"):
        lossless.decompress(tiny_run(seed=1), container.unpack(data))
    newer = bytearray(data)
    newer[8] = container.FORMAT_VERSION + 1
    with pytest.raises(CompressedFileError, match=f"format version {container.FORMAT_VERSION + 1}"):
        container.unpack(bytes(newer))
    with pytest.raises(CompressedFileError, match="not a vaekit compressed file"):
        container.unpack(b"PK\x03\x04" + data[4:])


def as_version_1(box: container.Container, fingerprint: bytes) -> bytes:
    """The bytes format version 1 wrote: the whole fingerprint and checksum, a payload length."""
    meta = json.dumps(box.meta, separators=(",", ":")).encode()
    codec_id = next(k for k, v in container.CODECS.items() if v == box.codec)
    body = (struct.pack("<8sHH32sI", container.MAGIC, 1, codec_id, fingerprint, len(meta)) + meta
            + struct.pack("<Q", len(box.payload)) + box.payload)
    return body + hashlib.sha256(body).digest()


def test_version_1_files_are_still_read():
    run, x = tiny_run(), random_images(5, binary=True)
    data = as_version_1(lossless.compress(run, x, names(5)), lossless.run_fingerprint(run))
    assert torch.equal(lossless.decompress(run, container.unpack(data))[0], x)
    with pytest.raises(CompressedFileError, match="another model"):
        lossless.decompress(tiny_run(seed=1), container.unpack(data))
    with pytest.raises(CompressedFileError, match="checksum"):
        container.unpack(data[:-1] + bytes([data[-1] ^ 1]))
    assert len(container.pack(lossless.compress(run, x, names(5)))) == len(data) - 40


def test_unsupported_models_and_inputs_are_clear_errors():
    with pytest.raises(VaekitError, match="discrete pixel likelihood"):
        lossless.compress(tiny_run("gaussian"), random_images(2), names(2))
    with pytest.raises(DataError, match="binary images only"):
        lossless.compress(tiny_run(), random_images(2), names(2))
    with pytest.raises(DataError, match="shape 1x8x8"):
        lossless.compress(tiny_run(), random_images(2, (1, 9, 8), binary=True), names(2))


def save_pngs(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(folder / f"img{i}.png")
    return folder


def test_cli_round_trip_of_a_folder(trained_run, digits_binary, tmp_path, capsys):
    folder = save_pngs(tmp_path / "in", digits_binary[:12])
    out = tmp_path / "d.vkz"
    assert main(["compress", str(trained_run.path), str(folder), "-o", str(out), "--lossless"]) == 0
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "by the context seed codec, the rest by bits-back" in printed
    assert main(["decompress", str(out), "-o", str(tmp_path / "out"), "--threads", "1"]) == 0
    for i in range(12):
        original = np.asarray(Image.open(folder / f"img{i}.png"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"img{i}.png")), original)
    (tmp_path / "blocked" / "img5.png").mkdir(parents=True)  # a folder where the sixth image goes
    assert "a folder of that name is in the way" in error_of(capsys, ["decompress", str(out), "-o",
                                                                      str(tmp_path / "blocked")])
    assert [p.name for p in (tmp_path / "blocked").iterdir()] == ["img5.png"]  # none of the others arrived


def test_cli_dataset_input_and_errors(trained_run, tmp_path, capsys):
    out = tmp_path / "digits.vkz"
    assert main(["compress", str(trained_run.path), "digits", "--split", "test", "--limit", "20", "-o", str(out),
                 "--lossless"]) == 0
    assert main(["decompress", str(out), "--run", str(trained_run.path), "-o", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("digits-test-*.png"))) == 20
    grey = save_pngs(tmp_path / "grey", random_images(2))
    assert "binary images only" in error_of(capsys, ["compress", str(trained_run.path), str(grey), "-o",
                                                     str(tmp_path / "g.vkz"), "--lossless"])
    out.write_bytes(out.read_bytes()[:-5])
    assert "truncated or corrupted" in error_of(capsys, ["decompress", str(out), "-o", str(tmp_path / "x")])
    assert "no compressed file" in error_of(capsys, ["decompress", str(tmp_path / "none.vkz"), "-o",
                                                     str(tmp_path / "x")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "g.vkz").exists()


def test_inputs_are_read_exactly_or_refused(tmp_path):
    from vaekit.codecs import images

    grey = random_images(2, (1, 5, 4))
    folder = save_pngs(tmp_path / "grey", grey)
    x, found = images.collect([str(folder)], channels=1)
    assert torch.equal(x, grey) and found == ["img0.png", "img1.png"]
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="is RGB"):
        images.collect([str(tmp_path / "rgb.png")], channels=1)
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="different sizes"):
        images.collect([str(folder), str(tmp_path / "big.png")], channels=1)
    with pytest.raises(DataError, match="same name"):
        images.collect([str(folder), str(folder / "img0.png")], channels=1)
