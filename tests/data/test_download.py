"""Downloads against a real HTTP server on 127.0.0.1 serving copies of the shared MNIST files."""

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vaekit.data import download, load_dataset
from vaekit.data.download import fetch, md5_of
from vaekit.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
LABELS = "t10k-labels-idx1-ubyte.gz"


class CountingHandler(SimpleHTTPRequestHandler):
    """Records every GET; answers 503 while server.failures[path] is positive, and cuts
    the connection half-way through the paths in server.cut."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.server.failures.get(self.path, 0) > 0:
            self.server.failures[self.path] -= 1
            self.send_error(503)
        elif self.path in self.server.cut:
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(root)))
    httpd.requests, httpd.failures, httpd.cut = [], {}, set()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(
        root=root, url=f"http://127.0.0.1:{httpd.server_port}/",
        requests=httpd.requests, failures=httpd.failures, cut=httpd.cut,
    )
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"shared MNIST files not found at {SHARED_MNIST}")
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEKIT_MNIST_MIRROR", raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    return tmp_path / "cache" / "mnist"


def serve(server, names=None) -> None:
    for path in sorted(SHARED_MNIST.glob("*.gz")):
        if names is None or path.name in names:
            shutil.copyfile(path, server.root / path.name)


def cache_files(folder: Path) -> list[str]:
    """Every file in the cache folder, hidden temp files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_full_download_then_cached(server, cache):
    serve(server)
    train = load_dataset("mnist", "train", mirror=server.url, progress=False)
    test = load_dataset("mnist", "test", mirror=server.url, progress=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert 0 <= int(train.labels.min()) and int(train.labels.max()) <= 9
    assert len(server.requests) == 4
    assert cache_files(cache) == sorted(p.name for p in SHARED_MNIST.glob("*.gz"))

    again = load_dataset("mnist", "train", mirror=server.url, progress=False)
    assert len(server.requests) == 4
    assert torch.equal(again.images, train.images)


def test_mirror_from_environment(server, cache, monkeypatch):
    serve(server, TEST_FILES)
    monkeypatch.setenv("VAEKIT_MNIST_MIRROR", server.url)
    assert len(load_dataset("mnist", "test", progress=False)) == 10000


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_leaves_cache_clean(server, cache, damage):
    serve(server, TEST_FILES)
    path = server.root / LABELS
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"could not download {LABELS}: {server.url}{LABELS} "
                                         r"\(a truncated or different file"):
        load_dataset("mnist", "test", mirror=server.url, progress=False)
    assert LABELS not in cache_files(cache)
    assert not [name for name in cache_files(cache) if name.endswith(".part")]
    assert server.requests.count(f"/{LABELS}") == 1  # wrong bytes are not worth a retry


def test_connection_cut_mid_transfer(server, cache):
    serve(server, [LABELS])
    server.cut.add(f"/{LABELS}")
    with pytest.raises(DataError, match=f"could not download {LABELS}: .*closed after .* bytes, after 3 tries"):
        fetch(LABELS, [server.url], {md5_of(SHARED_MNIST / LABELS)}, cache, progress=False)
    assert cache_files(cache) == []
    assert server.requests == [f"/{LABELS}"] * 3  # a dropped connection is worth a retry


def test_missing_first_mirror_falls_back(server, cache):
    serve(server, [LABELS])
    md5 = md5_of(SHARED_MNIST / LABELS)
    got = fetch(LABELS, [server.url + "gone/", server.url], {md5}, cache, progress=False)
    assert got == cache / LABELS and md5_of(got) == md5
    assert server.requests == [f"/gone/{LABELS}", f"/{LABELS}"]


def test_server_error_is_retried(server, cache):
    serve(server, [LABELS])
    server.failures[f"/{LABELS}"] = 2
    fetch(LABELS, [server.url], {md5_of(SHARED_MNIST / LABELS)}, cache, progress=False)
    assert server.requests == [f"/{LABELS}"] * 3


def test_all_mirrors_fail(server, cache):
    server.failures[f"/{LABELS}"] = 99
    with pytest.raises(DataError) as err:
        fetch(LABELS, [server.url + "gone/", server.url], {"0" * 32}, cache, progress=False)
    message = str(err.value)
    assert f"{server.url}gone/{LABELS} (HTTP 404" in message
    assert f"{server.url}{LABELS} (HTTP 503" in message and "after 3 tries" in message
    assert cache_files(cache) == []


def test_bad_cached_copy_is_replaced(server, cache):
    serve(server, [LABELS])
    md5 = md5_of(SHARED_MNIST / LABELS)
    cache.mkdir(parents=True)
    (cache / LABELS).write_bytes(b"stale")
    fetch(LABELS, [server.url], {md5}, cache, progress=False)
    assert md5_of(cache / LABELS) == md5 and len(server.requests) == 1
    fetch(LABELS, [server.url], {md5}, cache, progress=False)
    assert len(server.requests) == 1
