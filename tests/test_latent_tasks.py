"""Latent-space tasks: retrieval index, anomaly scores, 2-D maps, MIG and probes, and their CLI."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import vaekit
from vaekit.cli.main import main
from vaekit.data import load_dataset
from vaekit.errors import CheckpointError, DataError
from vaekit.tasks.anomaly import anomaly_scores, calibrate_threshold, score_batch, write_report
from vaekit.tasks.disentangle import mig
from vaekit.tasks.explore import plot_latent_map, project_2d
from vaekit.tasks.probe import probe
from vaekit.tasks.retrieve import (LatentIndex, add_dataset, build_index, check_same_model, embed, exact_search,
                                   item_images, load_query, run_fingerprint)
from conftest import error_of


def perturbed_copy(run_path, dest):
    """A copy of a run whose weights differ by a little: another model, as far as latents go."""
    shutil.copytree(run_path, dest)
    for name in ("model.safetensors", "ema.safetensors"):
        path = dest / "checkpoint" / name
        if path.exists():
            weights = load_file(path)
            first = sorted(weights)[0]
            weights[first] = weights[first] + 0.01
            save_file(weights, path)
    return dest


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", "test")


def source(split="test"):
    return {"data": "digits", "split": split, "data_dir": None, "image_size": None}


def save_png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return str(path)


# retrieval

def test_embed_is_deterministic_whatever_the_batch(trained_run, digits_test):
    a = embed(trained_run.model, digits_test.images, batch_size=7)
    b = embed(trained_run.model, digits_test.images.float() / 255, batch_size=500)
    assert a.shape == (297, 4)
    torch.testing.assert_close(a, b)


def test_exact_search_matches_a_full_sort():
    g = torch.Generator().manual_seed(0)
    data, queries = torch.randn(200, 5, generator=g), torch.randn(7, 5, generator=g)
    dist, idx = exact_search(data, queries, k=6, chunk_elements=450)  # two queries per chunk
    full = torch.cdist(queries, data)
    assert torch.equal(idx, full.argsort(1)[:, :6])
    torch.testing.assert_close(dist, full.sort(1).values[:, :6])
    assert exact_search(data, queries, k=500)[1].shape == (7, 200)


def test_index_round_trip_search_and_append(trained_run, digits_test, tmp_path):
    index = build_index(trained_run, digits_test, source())
    index.save(tmp_path / "idx")
    loaded = LatentIndex.load(tmp_path / "idx")
    assert torch.equal(loaded.embeddings, index.embeddings) and loaded.items == index.items
    assert loaded.labels == digits_test.labels.tolist() and loaded.items[3] == "digits[test]#3"
    hits = loaded.search(loaded.embeddings[[5, 9]], k=4)
    assert [row[0].index for row in hits] == [5, 9] and hits[0][0].distance == pytest.approx(0, abs=1e-5)
    assert all(a.distance <= b.distance for row in hits for a, b in zip(row, row[1:]))

    more = load_dataset("digits", "train")
    more.images, more.labels = more.images[:50], more.labels[:50]
    add_dataset(loaded, trained_run, more, source("train"))
    loaded.save(tmp_path / "idx")
    again = LatentIndex.load(tmp_path / "idx")
    assert len(again) == 347 and again.items[297] == "digits[train]#0"
    assert [s["count"] for s in again.sources] == [297, 50]
    shown = item_images(again, [2, 300])
    assert torch.equal(shown[0], digits_test.images[2].float() / 255)
    assert torch.equal(shown[1], more.images[3].float() / 255)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a vaekit index"):
        again.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").is_file()


def test_faiss_backend_finds_what_exact_search_finds(trained_run, digits_test, tmp_path):
    pytest.importorskip("faiss")
    index = build_index(trained_run, digits_test, source(), backend="faiss-hnsw")
    index.save(tmp_path / "idx")
    assert (tmp_path / "idx" / "faiss-hnsw.index").is_file()
    loaded = LatentIndex.load(tmp_path / "idx")
    queries = loaded.embeddings[:20] + 1e-3
    approx = [[h.index for h in row] for row in loaded.search(queries, 5)]
    exact = [[h.index for h in row] for row in LatentIndex.load(tmp_path / "idx", backend="exact").search(queries, 5)]
    assert sum(len(set(a) & set(e)) for a, e in zip(approx, exact)) >= 0.9 * 100
    loaded.add(loaded.embeddings[:3] + 100, ["x", "y", "z"], [None] * 3, source())
    assert loaded.search(loaded.embeddings[-1:], 1)[0][0].item == "z"


def test_a_corrupt_or_missing_index_is_one_clear_error(trained_run, digits_test, tmp_path):
    path = build_index(trained_run, digits_test, source()).save(tmp_path / "idx")
    data = bytearray((path / "embeddings.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (path / "embeddings.safetensors").write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt .*checksum"):
        LatentIndex.load(path)
    (path / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt"):
        LatentIndex.load(path)
    with pytest.raises(DataError, match="no index at"):
        LatentIndex.load(tmp_path / "nothing")


def test_an_index_refuses_another_models_latents(trained_run, digits_test, tmp_path):
    index = build_index(trained_run, digits_test, source())
    other = perturbed_copy(trained_run.path, tmp_path / "other")
    assert run_fingerprint(vaekit.load(trained_run.path)) == index.fingerprint
    with pytest.raises(CheckpointError, match="built by another model"):
        check_same_model(index, vaekit.load(other))
    with pytest.raises(DataError, match="queries must be"):
        index.search(torch.zeros(1, 3))


def test_query_of_another_size_is_refused_unless_resized(tmp_path):
    path = save_png(tmp_path / "q.png", np.zeros((30, 40)))
    with pytest.raises(DataError, match="is 40x30 pixels but the index's model takes 8x8"):
        load_query(path, (1, 8, 8))
    assert load_query(path, (1, 8, 8), resize=True).shape == (1, 8, 8)


# anomaly detection

def test_iwae_score_is_at_most_the_elbo_score_on_the_same_samples(trained_run, digits_test):
    x = digits_test.images[:40].float() / 255
    model = trained_run.model
    elbo = score_batch(model, x, "elbo", 16, torch.Generator().manual_seed(3))
    reported = []
    iwae = score_batch(model, x, "iwae", 16, torch.Generator().manual_seed(3), on_chunk=reported.append)
    assert sum(reported) == 16 * 40  # image-samples, for the progress bar
    assert (iwae <= elbo + 1e-4).all() and (iwae < elbo).any()
    recon = anomaly_scores(model, digits_test.images[:40], "recon")
    np.testing.assert_array_equal(recon, anomaly_scores(model, digits_test.images[:40], "recon", seed=5))
    with pytest.raises(DataError, match="unknown anomaly score"):
        anomaly_scores(model, digits_test.images[:4], "nll")


def test_noise_scores_higher_than_digits(trained_run, digits_test):
    noise = torch.randint(0, 256, (50, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for score in ("elbo", "iwae", "recon"):
        digits = anomaly_scores(trained_run.model, digits_test.images[:50], score, k=8)
        assert np.median(anomaly_scores(trained_run.model, noise, score, k=8)) > np.percentile(digits, 90)


def test_threshold_keeps_the_false_positive_rate():
    scores = np.random.default_rng(0).normal(size=1000)
    for fpr in (0.01, 0.05, 0.3):
        threshold = calibrate_threshold(scores, fpr)
        assert fpr - 0.002 <= (scores > threshold).mean() <= fpr
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        calibrate_threshold(scores, 0)


def test_report_files_agree_with_the_threshold(digits_test, tmp_path):
    scores = np.linspace(0, 10, 20)
    images = digits_test.images[:20]
    items, labels = [f"i{i}" for i in range(20)], digits_test.labels[:20].tolist()
    summary = write_report(tmp_path / "rep", scores, np.arange(10.0), 7.5, images, items, labels, {"score": "iwae"})
    rows = (tmp_path / "rep" / "scores.csv").read_text().splitlines()
    assert rows[0] == "item,label,score_nats,anomalous,rank" and len(rows) == 21
    assert sum(int(r.split(",")[3]) for r in rows[1:]) == summary["n_flagged"] == int((scores > 7.5).sum())
    assert rows[-1].endswith(",1,1") and summary["most_anomalous"][0]["item"] == "i19"
    for name in ("histogram.png", "most_anomalous.png", "summary.json"):
        assert (tmp_path / "rep" / name).is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not an anomaly report"):
        write_report(tmp_path / "mine", scores, scores, 1.0, images, items, labels, {})
    assert (tmp_path / "mine" / "notes.txt").is_file()


# exploration, disentanglement, probes

def test_projections_to_two_dims(tmp_path):
    z = np.random.default_rng(0).normal(size=(60, 4))
    coords, method = project_2d(z)
    assert coords.shape == (60, 2) and method == "pca"
    assert np.allclose(project_2d(z[:, :2])[0], z[:, :2]) and project_2d(z[:, :2])[1] == "identity"
    assert project_2d(z[:, :1])[0].shape == (60, 2)
    assert project_2d(z, "tsne")[0].shape == (60, 2)
    assert plot_latent_map(coords, np.arange(60) % 3, tmp_path / "m.png").is_file()
    assert plot_latent_map(coords, np.arange(60), tmp_path / "many.png").is_file()  # colour bar
    with pytest.raises(DataError, match="unknown projection"):
        project_2d(z, "umap")


def test_mig_is_high_for_axis_aligned_factors_and_low_for_mixed_ones():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 8, size=(3000, 2))
    noise = rng.normal(size=(3000, 3))
    aligned = np.column_stack([factors[:, 0], factors[:, 1], noise[:, 0]]) + 0.01 * noise
    mixed = np.column_stack([factors.sum(1), factors.sum(1) + 0.01 * noise[:, 1], noise[:, 2]])
    good = mig(aligned, factors, ("a", "b"))
    assert good["mig"] > 0.9 and good["best_dims"] == {"a": 0, "b": 1}
    assert mig(mixed, factors)["mig"] < 0.1
    assert set(mig(aligned, np.column_stack([factors, np.zeros(3000)]))["per_factor"]) == {"factor0", "factor1"}
    with pytest.raises(DataError, match="at least two"):
        mig(aligned[:, :1], factors)


def test_probe_reads_separable_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    z = np.eye(3)[labels] * 5 + rng.normal(size=(300, 3)) * 0.3
    result = probe(z[:200], labels[:200], z[200:], labels[200:], k=5)
    assert result["linear_accuracy"] == 1.0 and result["knn_accuracy"] == 1.0
    factors = np.column_stack([labels, labels[::-1]])
    per = probe(z[:200], factors[:200], z[200:], factors[200:], factor_names=("same", "reversed"))["per_factor"]
    assert per["same"]["linear_accuracy"] == 1.0 and per["reversed"]["linear_accuracy"] < 0.6


# the CLI

def test_cli_index_search_append(trained_run, digits_test, tmp_path, capsys):
    run, idx = str(trained_run.path), str(tmp_path / "idx")
    assert main(["index", run, "--data", "digits", "--limit", "100", "-o", idx]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == 100
    query = save_png(tmp_path / "q.png", digits_test.images[0, 0])
    assert main(["search", idx, query, query, "-k", "3", "-o", str(tmp_path / "grid.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [len(r["neighbours"]) for r in result["results"]] == [3, 3]
    first = result["results"][0]["neighbours"]
    assert [h["rank"] for h in first] == [1, 2, 3] and first[0]["distance"] <= first[2]["distance"]
    assert first[0]["item"].startswith("digits[train]#") and isinstance(first[0]["label"], int)
    assert Image.open(tmp_path / "grid.png").size == (4 * 50 + 2, 2 * 50 + 2)  # a row per query: it + 3 hits
    assert main(["index", run, "--data", "digits", "--split", "test", "--limit", "20", "-o", idx, "--append"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == 120

    assert "already exists; pass --append" in error_of(capsys, ["index", run, "--data", "digits", "-o", idx])
    big = save_png(tmp_path / "big.png", np.zeros((16, 16)))
    assert "pass --resize" in error_of(capsys, ["search", idx, big])
    assert main(["search", idx, big, "--resize", "-k", "1"]) == 0
    capsys.readouterr()
    other = perturbed_copy(trained_run.path, tmp_path / "other")
    assert "built by another model" in error_of(capsys, ["search", idx, query, "--run", str(other)])
    assert "built by another model" in error_of(capsys, ["index", str(other), "-o", idx, "--append"])
    (tmp_path / "idx" / "index.json").write_text("[]")
    assert "corrupt" in error_of(capsys, ["search", idx, query])


def test_cli_detect_map_probe(trained_run, tmp_path, capsys):
    run = str(trained_run.path)
    assert main(["detect", run, "--data", "digits", "--limit", "60", "--score", "elbo", "-k", "4",
                 "--fpr", "0.1", "-o", str(tmp_path / "rep")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 60 and summary["normal_fpr"] <= 0.1
    saved = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert saved["normal"] == "the run's validation images" and saved["k"] == 4
    assert main(["detect", run, "--data", "digits", "--limit", "30", "--normal", "digits", "--score", "recon",
                 "-o", str(tmp_path / "rep")]) == 0  # replaces the old report
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["n_images"] == 30
    capsys.readouterr()

    assert main(["latent-map", run, "--data", "digits", "-o", str(tmp_path / "map.png")]) == 0
    assert capsys.readouterr().out.strip().endswith("map.png")
    assert Image.open(tmp_path / "map.png").size[0] > 100
    assert main(["probe", run, "--data", "digits", "--limit", "200", "-k", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.1 < result["knn_accuracy"] <= 1 and 0.1 < result["linear_accuracy"] <= 1
    assert main(["eval", run, "--data", "digits", "--limit", "100", "--probe", "--probe-k", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["probe"]["n_test"] == 100 and 0.1 < result["probe"]["knn_accuracy"] <= 1
    assert result["neg_elbo_nats"] > 0

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        save_png(folder / f"{i}.png", np.full((8, 8), 40 * i))
    assert "has no labels" in error_of(capsys, ["probe", run, "--data", str(folder)])
    assert "-k 300 is more than the 200 training images" in error_of(
        capsys, ["probe", run, "--data", "digits", "--limit", "200", "-k", "300"])
    assert "needs factor labels" in error_of(capsys, ["latent-map", run, "--data", "digits", "--factor", "x",
                                                      "-o", str(tmp_path / "m.png")])
    assert "takes images of shape 1x8x8" in error_of(capsys, ["detect", run, "--data", "sprites", "--limit", "5",
                                                              "-o", str(tmp_path / "r2")])
