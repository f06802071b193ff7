"""The CLI end to end on a tiny config, and its errors: one sentence, exit code 2."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli.main import main
from conftest import error_of, usage_error_of

TINY = ["--data", "digits", "--limit", "200", "--latent-dim", "3", "--hidden-dims", "16", "--epochs", "2",
        "--batch-size", "50"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out), "--set", "beta=2", "--set", "ema_decay=0.9"]) == 0
    return out


@pytest.fixture
def digit_pngs(tmp_path):
    paths = []
    for i, size in enumerate([(8, 8), (40, 30)]):
        array = (np.random.default_rng(i).random(size[::-1]) * 255).astype(np.uint8)
        Image.fromarray(array).save(tmp_path / f"d{i}.png")
        paths.append(str(tmp_path / f"d{i}.png"))
    return paths


def test_train_writes_a_full_run(run_dir, capsys):
    config = json.loads((run_dir / "checkpoint/config.json").read_text())
    assert config["train"]["beta"] == 2.0 and config["train"]["ema_decay"] == 0.9
    assert config["model"]["image_shape"] == [1, 8, 8]
    for name in ("index.html", "samples.png", "loss.png", "metrics.json", "metrics.jsonl"):
        assert (run_dir / name).exists()


def test_train_from_yaml_with_overrides(tmp_path):
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("data:\n  data: digits\n  limit: 100\nmodel:\n  arch: conv\n  hidden_dims: [4, 8]\n"
                         "  fc_dim: 16\n  latent_dim: 2\ntrain:\n  epochs: 1\n")
    assert main(["train", str(yaml_path), "--out", str(tmp_path / "r"), "--latent-dim", "3", "--no-report"]) == 0
    config = json.loads((tmp_path / "r/checkpoint/config.json").read_text())
    assert config["model"]["arch"] == "conv" and config["model"]["latent_dim"] == 3
    assert not (tmp_path / "r/index.html").exists()


def test_train_picks_a_fresh_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["train", *TINY, "--epochs", "1", "--no-report"]) == 0
    assert (tmp_path / "runs/digits-mlp/checkpoint").is_dir() and (tmp_path / "runs/digits-mlp-2/checkpoint").is_dir()


def test_sample_reconstruct_interpolate_traverse(run_dir, digit_pngs, tmp_path):
    assert main(["sample", str(run_dir), "-n", "10", "-o", str(tmp_path / "s.png"), "--temperature", "0.5"]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 0
    assert main(["reconstruct", str(run_dir), *digit_pngs, "-o", str(tmp_path / "rec")]) == 0
    assert Image.open(tmp_path / "rec/d1_recon.png").size == (8, 8)
    assert (tmp_path / "rec/comparison.png").exists()
    assert main(["interpolate", str(run_dir), *digit_pngs, "-o", str(tmp_path / "i.png"), "--spherical"]) == 0
    assert main(["traverse", str(run_dir), "--dims", "0,2", "-o", str(tmp_path / "t.png")]) == 0
    assert Image.open(tmp_path / "t.png").size[1] < Image.open(tmp_path / "t.png").size[0]


def test_same_seed_same_samples(run_dir, tmp_path):
    for name in ("a", "b"):
        assert main(["sample", str(run_dir), "-n", "4", "--seed", "3", "-o", str(tmp_path / f"{name}.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_eval_prints_json(run_dir, capsys, tmp_path):
    assert main(["eval", str(run_dir), "--split", "test", "--iwae", "20", "-o", str(tmp_path / "m.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["binarized"] is True and result["iwae_k"] == 20 and result["n_images"] == 297
    for key in ("neg_elbo_nats", "iwae_nll_nats", "recon_nats", "kl_nats", "bits_per_dim"):
        assert np.isfinite(result[key])
    assert result["iwae_nll_nats"] <= result["neg_elbo_nats"] + 0.5
    assert json.loads((tmp_path / "m.json").read_text()) == result


def test_an_interrupted_eval_resumes_to_the_uninterrupted_result(run_dir, capsys, tmp_path, monkeypatch):
    from vaekit.engine import partial_eval

    args = ["eval", str(run_dir), "--iwae", "20", "--batch-size", "100"]  # 297 test images: 3 batches
    assert main(args) == 0
    uninterrupted = json.loads(capsys.readouterr().out)
    partial, writes, stop_after = tmp_path / "partial.json", [], []
    write_text = partial_eval.write_text

    def counted_write(path, text):  # and Ctrl-C once `stop_after` writes are done
        write_text(path, text)
        writes.append(json.loads(text)["images_done"])
        if len(writes) == 2 and stop_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(partial_eval, "write_text", counted_write)
    stop_after.append(True)
    assert main([*args, "--partial", str(partial)]) == 130
    assert writes == [0, 100] and json.loads(partial.read_text())["images_done"] == 100
    stop_after.clear()
    capsys.readouterr()
    assert main([*args, "--partial", str(partial)]) == 0
    assert writes[2:] == [200, 297]  # resumed after the first batch, not restarted
    assert json.loads(capsys.readouterr().out) == uninterrupted
    assert main([*args, "--partial", str(partial)]) == 0  # a finished file: the result again, nothing recomputed
    assert len(writes) == 4 and json.loads(capsys.readouterr().out) == uninterrupted
    assert "holds an evaluation with other --iwae" in error_of(
        capsys, [*args[:2], "--iwae", "10", "--batch-size", "100", "--partial", str(partial)])
    partial.write_text('{"format": 1, "scores": [')
    assert "is not a partial evaluation file" in error_of(capsys, [*args, "--partial", str(partial)])
    assert "is a folder" in error_of(capsys, [*args, "--partial", str(tmp_path)])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "is a file, not a folder" in error_of(capsys, [*args, "--partial", str(blocker / "partial.json")])
    assert "name the same file" in error_of(capsys, [*args, "--partial", str(partial), "-o", str(partial)])


def test_the_partial_key_names_the_grouping_only_of_batches_larger_than_a_pass(run_dir, capsys, tmp_path):
    from vaekit.engine.checkpoint import load_vae
    from vaekit.engine.partial_eval import evaluation_key

    run = load_vae(run_dir)
    images, per_pass = torch.zeros(3, *run.model.image_shape), run.model.samples_per_pass
    assert "images_per_pass" not in evaluation_key(run, images, 10, per_pass, 0)  # earlier files still match
    assert evaluation_key(run, images, 10, per_pass + 1, 0)["images_per_pass"] == per_pass
    partial = tmp_path / "partial.json"
    args = ["eval", str(run_dir), "--iwae", "2", "--limit", "3", "--partial", str(partial)]
    assert main([*args, "--batch-size", str(per_pass + 1)]) == 0
    saved = json.loads(partial.read_text())
    del saved["key"]["images_per_pass"]  # as a vaekit without the grouping wrote it
    partial.write_text(json.dumps(saved))
    capsys.readouterr()
    assert "grouping of a batch's images" in error_of(capsys, [*args, "--batch-size", str(per_pass + 1)])


def test_resume_continues_from_the_cli(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["train", *TINY, "--epochs", "3", "--set", "beta=2", "--set", "ema_decay=0.9", "--out", str(copy),
                 "--no-report", "--resume"]) == 0
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # the run's own settings are the base: naming only the epochs is enough, a changed setting is refused
    assert main(["train", "--epochs", "4", "--out", str(copy), "--no-report", "--resume"]) == 0
    assert len((copy / "metrics.jsonl").read_text().splitlines()) == 4
    capsys.readouterr()
    assert "was trained with model.latent_dim" in error_of(
        capsys, ["train", "--epochs", "5", "--latent-dim", "7", "--out", str(copy), "--resume"])


def test_errors_are_one_sentence(run_dir, capsys, tmp_path, digit_pngs):
    assert "no run folder" in error_of(capsys, ["sample", str(tmp_path / "nope"), "-o", str(tmp_path / "x.png")])
    assert "unknown config key 'betta'" in error_of(
        capsys, ["train", *TINY, "--out", str(tmp_path / "r"), "--set", "betta=2"])
    assert "--set takes KEY=VALUE" in error_of(capsys, ["train", *TINY, "--out", str(tmp_path / "r"), "--set", "beta"])
    assert "train.lr must be at least 0" in error_of(capsys, ["train", *TINY, "--out", str(tmp_path / "r"),
                                                             "--lr", "-1"])
    assert "already holds a trained run" in error_of(capsys, ["train", *TINY, "--out", str(run_dir)])
    assert "does not exist" in error_of(capsys, ["reconstruct", str(run_dir), str(tmp_path / "missing.png"),
                                                 "-o", str(tmp_path / "o")])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    assert "cannot read image" in error_of(capsys, ["interpolate", str(run_dir), str(tmp_path / "bad.png"),
                                                    digit_pngs[0], "-o", str(tmp_path / "o.png")])
    assert "takes images of shape 1x8x8" in error_of(capsys, ["eval", str(run_dir), "--data", "sprites"])
    assert "--dims must lie in 0..2" in error_of(capsys, ["traverse", str(run_dir), "--dims", "5",
                                                          "-o", str(tmp_path / "t.png")])
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["sample", "RUN", "-n", "0", "-o", "s.png"], "argument -n: must be at least 1, got 0"),
    (["sample", "RUN", "--temperature", "nan", "-o", "s.png"], "argument --temperature: must be a finite number"),
    (["interpolate", "RUN", "a.png", "b.png", "--steps", "1", "-o", "i.png"], "argument --steps: must be at least 2"),
    (["traverse", "RUN", "--dims", "0,x", "-o", "t.png"], "argument --dims: expected comma-separated whole numbers"),
    (["traverse", "RUN", "--span", "inf", "-o", "t.png"], "argument --span: must be a finite number"),
    (["eval", "RUN", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["eval", "RUN", "--threads", "-1"], "argument --threads: must be at least 1, got -1"),
    (["eval", "RUN", "--iwae", "-5"], "argument --iwae: must be at least 0, got -5"),
    (["index", "RUN", "--batch-size", "0", "-o", "ix"], "argument --batch-size: must be at least 1"),
    (["detect", "RUN", "--fpr", "1", "-o", "r"], "argument --fpr: must be below 1, got 1"),
    (["compress", "RUN", "mnist", "--limit", "-1", "--lossless", "-o", "x.vkz"],
     "argument --limit: must be at least 1"),
    (["demo", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["sample", "RUN", "--seed", str(2**64), "-o", "s.png"], "argument --seed: must be at most 18446744073709551615"),
    (["video", "generate", "RUN", "--fps", "0", "-o", "a.gif"], "argument --fps: must be above 0, got 0"),
])
def test_values_outside_their_range_are_refused_while_parsing(capsys, argv, message):
    assert message in usage_error_of(capsys, argv)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_config_numbers_must_be_finite(capsys, tmp_path, value):
    """NaN passes every range check (each comparison is false); inf trains a NaN model."""
    assert f"train.lr must be a finite number, got {value}" in error_of(
        capsys, ["train", *TINY, "--out", str(tmp_path / "r"), "--lr", value])
    assert "finite" in error_of(capsys, ["train", *TINY, "--out", str(tmp_path / "r"), "--set", f"beta={value}"])
    assert not (tmp_path / "r").exists()


def test_outputs_that_cannot_be_written_are_refused_before_any_work(run_dir, capsys, tmp_path, digit_pngs):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert "is a folder; give a file name" in error_of(capsys, ["sample", str(run_dir), "-o", str(tmp_path)])
    assert "is a folder; give a file name" in error_of(capsys, ["eval", str(run_dir), "-o", str(tmp_path)])
    assert f"{a_file} is a file; give a folder" in error_of(
        capsys, ["reconstruct", str(run_dir), digit_pngs[0], "-o", str(a_file)])
    assert f"{a_file} is a file, not a folder" in error_of(
        capsys, ["sample", str(run_dir), "-o", str(a_file / "s.png")])
    assert "is a file; give a folder" in error_of(capsys, ["train", *TINY, "--out", str(a_file)])
    assert "cannot write" in error_of(capsys, ["sample", str(run_dir), "-o", str(tmp_path / ("x" * 300 + ".png"))])
    assert "as XBM" in error_of(capsys, ["sample", str(run_dir), "-o", str(tmp_path / "s.xbm")])  # Pillow can't
    (tmp_path / "sub").mkdir()
    shutil.copy(digit_pngs[0], tmp_path / "sub")
    assert "share a name" in error_of(capsys, ["reconstruct", str(run_dir), digit_pngs[0], str(tmp_path / "sub/d0.png"),
                                               "-o", str(tmp_path / "r")])
    assert a_file.read_text() == "" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "d0.png", "d1.png",
                                                                                        "sub"]


def test_a_report_arrives_whole_or_not_at_all(capsys, tmp_path):
    (tmp_path / "r" / "metrics.json").mkdir(parents=True)  # in the way of the last file but one
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 2  # after training, with its progress bars
    assert "a folder of that name is in the way" in capsys.readouterr().err.strip().splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint", "metrics.json", "metrics.jsonl"]


def test_a_run_on_one_image_gets_a_report_without_the_interpolation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")  # a stray RANK without torchrun's WORLD_SIZE: still one process, with its report
    assert main(["train", "--data", "digits", "--limit", "1", "--val-fraction", "0", "--epochs", "1", "--hidden-dims",
                 "16", "--latent-dim", "2", "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one/index.html").exists() and not (tmp_path / "one/interpolation.png").exists()
    capsys.readouterr()
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert "WORLD_SIZE must be a positive number" in error_of(capsys, ["train", *TINY, "--out", str(tmp_path / "w")])


def test_running_out_of_memory_is_one_sentence(run_dir, capsys, tmp_path, monkeypatch):
    import vaekit.imaging

    for error in (MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                                              "allocate memory: you tried to allocate 80000000000 bytes.")):
        def no_memory(*args, **kwargs):
            raise error

        monkeypatch.setattr(vaekit.imaging, "save_grid", no_memory)
        assert "out of memory; ask for fewer images" in error_of(
            capsys, ["sample", str(run_dir), "-o", str(tmp_path / "s.png")])
    monkeypatch.setattr(vaekit.imaging, "save_grid", lambda *args, **kwargs: torch.zeros(2, 3) @ torch.zeros(4, 5))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):  # a bug keeps its traceback
        main(["sample", str(run_dir), "-o", str(tmp_path / "s.png")])


def test_help_lists_every_flag_with_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--batch-size", "--lr", "--seed", "--threads", "--data-dir", "--latent-dim", "--beta",
                 "--free-bits", "--kl-warmup-epochs", "--iwae-k", "--ema-decay", "--grad-clip"):
        assert flag in out
    assert "(default: 128)" in out
