"""Sample quality: how real and how sharp a model's images look, beside the likelihood metrics.

- `frechet_distance(a, b)`: ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians
  fitted to two sets of feature vectors (Heusel et al. 2017). 0 for identical sets.
- Classifier FD (`feature_classifier`): the features are the 128-d penultimate layer of a small CNN
  that vaekit trains on the same dataset's training images: on its labels when it has classes
  (MNIST digits), else on predicting which of 4 rotations an image was given (Gidaris et al. 2018),
  which needs no labels (folders of photo crops). The network is trained once per dataset with a
  fixed seed and cached: <cache>/<dataset>-<CxHxW>-<hash of the images>.safetensors + .json, both
  written atomically, <cache> being the `cache_dir` argument, else $VAEKIT_CLASSIFIERS, else
  ~/.cache/vaekit/classifiers. Numbers are comparable between runs on the same dataset only.
- `sharpness(images)`: the variance of the Laplacian of each image's grey levels (Pech-Pacheco et
  al. 2000), pixels in [0, 1]; blurry images score low.
- `inception_fid`: the usual FID, with the Inception network of the original TensorFlow FID as a
  TorchScript file (`inception-2015-12-05.pt`, the one StyleGAN2-ADA and clean-fid use) when the
  user has it; vaekit neither ships nor downloads it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vaekit.engine.batches import to_unit
from vaekit.engine.files import atomic_path, write_json
from vaekit.errors import DataError

CLASSIFIER_VERSION = 1  # bump when the network or its training changes: old cache entries are then ignored
ROTATIONS = 4


def check_images(images: torch.Tensor, what: str = "images") -> None:
    if not torch.is_tensor(images) or images.dim() != 4:
        got = f"a {images.dim()}-D tensor" if torch.is_tensor(images) else type(images).__name__
        raise DataError(f"{what} must be a batch of shape (N, C, H, W), got {got}")
    if images.shape[1] not in (1, 3):
        raise DataError(f"{what} must have 1 or 3 channels, got {images.shape[1]}")


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Variance of the 3x3 Laplacian over each image's grey levels, (N,); images (N, C, H, W) in [0, 1]."""
    check_images(images)
    if min(images.shape[2:]) < 3:
        raise DataError(f"sharpness needs images of at least 3x3 pixels, got {images.shape[2]}x{images.shape[3]}")
    grey = images.float().mean(1, keepdim=True)  # (N, 1, H, W)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(grey, kernel).flatten(1).var(1)  # (N,)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to features a (N, F) and b (M, F), in float64.
    Tr (C_a C_b)^(1/2) is computed as Tr (S C_b S)^(1/2) with S = C_a^(1/2): the same eigenvalues,
    of a symmetric matrix, so no complex square roots appear."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"feature sets must be (N, F) with the same F, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(len(a), len(b)) < 2:
        raise DataError("the Fréchet distance needs at least 2 feature vectors in each set")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    diff = mu_a - mu_b
    return float(diff @ diff + cov_a.trace() + cov_b.trace() - 2 * cross)


def psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


class FeatureClassifier(nn.Module):
    """conv 3x3 stride 2 (32) -> ReLU -> conv 3x3 stride 2 (64) -> ReLU -> average to 4x4 -> fc 128
    -> ReLU = `features` (N, 128) -> fc to the classes. Any image size of at least 4x4."""

    feature_dim = 128

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, self.feature_dim), nn.ReLU())
        self.head = nn.Linear(self.feature_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, 128)."""
        check_images(images)
        self.eval()
        return torch.cat([self.body(images[i:i + batch_size].float()) for i in range(0, len(images), batch_size)])


@dataclass
class ClassifierSpec:
    """How the classifier is trained; all of it is part of the cache key."""

    seed: int = 0
    epochs: int = 3
    max_images: int = 20000  # train on at most this many images (a fixed, seeded subset)
    batch_size: int = 128
    lr: float = 2e-3


def classifier_cache_dir(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("VAEKIT_CLASSIFIERS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaekit" / "classifiers"


def cache_key(images: torch.Tensor, labels: torch.Tensor | None, name: str, spec: ClassifierSpec) -> str:
    """<dataset>-<CxHxW>-<16 hex digits of a hash of the images, labels and spec>."""
    h = hashlib.blake2b(digest_size=8)
    h.update(images.contiguous().numpy().tobytes())
    if labels is not None:
        h.update(labels.contiguous().numpy().tobytes())
    h.update(json.dumps({"version": CLASSIFIER_VERSION, **spec.__dict__}, sort_keys=True).encode())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or "data").strip("._") or "data"
    return f"{slug}-{'x'.join(map(str, images.shape[1:]))}-{h.hexdigest()}"


def usable_labels(labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Class labels (int, one per image) or None when the dataset has none (or factor tables)."""
    if labels is None or labels.dim() != 1 or len(labels) != n or labels.min() < 0:
        return None
    return labels.long()


def feature_classifier(images: torch.Tensor, labels: torch.Tensor | None, name: str, *,
                       cache_dir: str | Path | None = None, spec: ClassifierSpec | None = None,
                       progress: bool = True) -> FeatureClassifier:
    """The classifier for a dataset's training images (uint8 (N, C, H, W)): read from the cache, or
    trained (seconds to a minute on CPU) and cached."""
    check_images(images, "the classifier's training images")
    if images.dtype != torch.uint8:
        raise DataError(f"the classifier trains on uint8 images, got {images.dtype}")
    spec = spec or ClassifierSpec()
    labels = usable_labels(labels, len(images))
    classes = int(labels.max()) + 1 if labels is not None else ROTATIONS
    if labels is None and images.shape[2] != images.shape[3]:
        raise DataError("a dataset without labels needs square images (the classifier learns their rotations)")
    key = cache_key(images, labels, name, spec)
    folder = classifier_cache_dir(cache_dir)
    weights, meta = folder / f"{key}.safetensors", folder / f"{key}.json"
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        model = FeatureClassifier(images.shape[1], classes)
    if meta.is_file() and weights.is_file():
        try:
            model.load_state_dict(load_file(weights))
            return model.eval()
        except (SafetensorError, OSError, RuntimeError, ValueError):
            pass  # a damaged entry is retrained and replaced
    accuracy = train_classifier(model, images, labels, spec, progress)
    try:
        with atomic_path(weights) as tmp:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
        write_json(meta, {"key": key, "dataset": name, "image_shape": list(images.shape[1:]),
                          "task": "labels" if labels is not None else "rotation", "classes": classes,
                          "held_out_accuracy": accuracy, "version": CLASSIFIER_VERSION, **spec.__dict__})
    except OSError as e:
        raise DataError(f"cannot write the classifier cache in {folder}: {e.strerror or e}") from None
    return model.eval()


def rotated(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image turned by a random multiple of 90 degrees, and that multiple (the label)."""
    k = torch.randint(0, ROTATIONS, (len(x),), generator=generator)
    return torch.stack([torch.rot90(img, int(r), (1, 2)) for img, r in zip(x, k)]), k


def train_classifier(model: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor | None,
                     spec: ClassifierSpec, progress: bool) -> float:
    """Adam on a fixed seeded subset, a 5% hold-out; returns the held-out accuracy."""
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(spec.seed)
    order = torch.randperm(len(images), generator=g)[: spec.max_images + max(1, spec.max_images // 20)]
    n_val = max(1, len(order) // 21)
    val, train = order[:n_val], order[n_val:]
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    steps = spec.epochs * -(-len(train) // spec.batch_size)
    bar = tqdm(total=steps, desc="training the FD classifier", unit="batch", disable=not progress, leave=False)
    model.train()
    for _ in range(spec.epochs):
        perm = train[torch.randperm(len(train), generator=g)]
        for start in range(0, len(perm), spec.batch_size):
            idx = perm[start:start + spec.batch_size]
            x, y = batch_with_targets(images, labels, idx, g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
    bar.close()
    model.eval()
    with torch.no_grad():
        x, y = batch_with_targets(images, labels, val, g)
        return float((model(x).argmax(1) == y).float().mean())


def batch_with_targets(images, labels, idx, g) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_unit(images[idx])
    return (x, labels[idx]) if labels is not None else rotated(x, g)


def load_inception(path: str | Path | None = None):
    """The FID Inception network from `path`, else $VAEKIT_INCEPTION; one clear error when absent."""
    path = path or os.environ.get("VAEKIT_INCEPTION")
    if not path or not Path(path).expanduser().is_file():
        where = f"there is no file {path}" if path else "no file was given"
        raise DataError(f"Inception FID needs the FID Inception network as a TorchScript file "
                        f"(inception-2015-12-05.pt, as StyleGAN2-ADA and clean-fid use) and {where}: pass "
                        "--inception PATH or set VAEKIT_INCEPTION")
    try:
        with warnings.catch_warnings():  # deprecated in favour of torch.export, but the FID network ships as TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(Path(path).expanduser()), map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path} is not a TorchScript Inception network ({first})") from None


@torch.no_grad()
def inception_features(network, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 2048) pool features; grey images are repeated to RGB and
    pixels scaled to [0, 255], the network resizing to 299x299 itself."""
    check_images(images)
    parts = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].float().expand(-1, 3, -1, -1) * 255
        parts.append(network(x, return_features=True).flatten(1).double())
    return torch.cat(parts)


def inception_fid(real: torch.Tensor, fake: torch.Tensor, path: str | Path | None = None) -> float:
    network = load_inception(path)
    return frechet_distance(inception_features(network, real), inception_features(network, fake))


@torch.no_grad()
def sample_quality(model, real: torch.Tensor, classifier: FeatureClassifier, n: int = 5000, seed: int = 0,
                   reference: torch.Tensor | None = None, inception: str | Path | None = None) -> dict:
    """FD (classifier features) and sharpness of n prior samples of `model` against real held-out
    images `real` (uint8 (N, C, H, W), the first n used). `reference`, more real images (say from
    the training split), gives the FD of real against real: the floor a perfect model would reach.
    `inception`: a path to the FID Inception network, to add the usual FID."""
    check_images(real, "the real images")
    if n < 2:
        raise DataError(f"sample quality needs at least 2 samples, got {n}")
    g = torch.Generator().manual_seed(seed)
    model.eval()
    samples = torch.cat([model.sample(min(500, n - i), generator=g) for i in range(0, n, 500)])
    if tuple(samples.shape[1:]) != tuple(real.shape[1:]):
        raise DataError(f"the model makes {'x'.join(map(str, samples.shape[1:]))} images but the real images are "
                        f"{'x'.join(map(str, real.shape[1:]))}")
    x = to_unit(real[:n])
    fake_features = classifier.features(samples)
    result = {"n_samples": n, "n_real": len(x),
              "fd_classifier": frechet_distance(classifier.features(x), fake_features),
              "sharpness_samples": float(sharpness(samples).mean()), "sharpness_real": float(sharpness(x).mean())}
    if reference is not None:
        result["fd_classifier_real_vs_real"] = frechet_distance(classifier.features(to_unit(reference[:n])),
                                                                classifier.features(x))
    if inception is not None:
        result["fid_inception"] = inception_fid(x, samples, inception)
    return result
