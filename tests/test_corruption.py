import pytest
import torch

from vaekit.config import Config
from vaekit.corruption import block_mask, centre_mask, degrade, gaussian_noise, jpeg, pixel_mask, salt_and_pepper, stroke_mask
from vaekit.engine.trainer import fit
from conftest import tiny_config

SHAPE = (64, 1, 16, 16)


@pytest.mark.parametrize("make", [block_mask, centre_mask, stroke_mask, pixel_mask])
def test_masks_cover_about_the_asked_fraction(make):
    mask = make(SHAPE, 0.25, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.15 < mask.mean().item() < 0.35
    again = make(SHAPE, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_centre_mask_is_the_middle_square():
    mask = centre_mask((3, 1, 28, 28), 0.25)
    expected = torch.zeros(1, 28, 28)
    expected[:, 7:21, 7:21] = 1
    assert all(torch.equal(m, expected) for m in mask)


def test_noises_stay_in_range_and_change_the_image():
    x = torch.rand(SHAPE)
    g = torch.Generator().manual_seed(0)
    noisy = gaussian_noise(x, 0.5, g)
    assert noisy.min() >= 0 and noisy.max() <= 1 and (noisy - x).abs().mean() > 0.1
    sp = salt_and_pepper(x, 0.2, g)
    changed = (sp != x).float().mean().item()
    assert 0.1 < changed < 0.3 and set(sp[sp != x].unique().tolist()) <= {0.0, 1.0}
    j = jpeg(x[:4], quality=10)
    assert j.shape == (4, 1, 16, 16) and (j - x[:4]).abs().mean() > 0.01
    rgb = jpeg(torch.rand(2, 3, 16, 16), quality=50)
    assert rgb.shape == (2, 3, 16, 16)


def test_occlusion_hides_pixels_and_weights_regions():
    cfg = Config().replace({"occlusion": "blocks", "occlusion_lambda": 2.0, "occluded_weight": 1.5,
                            "visible_weight": 0.5}).mechanism
    x = torch.rand(SHAPE) + 0.01
    seen, weights = degrade(x, cfg, torch.Generator().manual_seed(0))
    hidden = seen == 0
    assert hidden.any() and torch.allclose(weights[hidden], torch.tensor(1 + 2 * 1.5))
    assert torch.allclose(weights[~hidden], torch.tensor(1 + 2 * 0.5))


@pytest.mark.parametrize("mechanism", [{"noise": "gaussian", "noise_random": True}, {"noise": "salt-pepper"},
                                       {"occlusion": "strokes"}, {"noise": "jpeg", "occlusion": "pixels"}])
def test_training_with_a_mechanism(tmp_path, mechanism):
    run = fit(tiny_config(epochs=1, binarize=False, **mechanism), tmp_path / "run", progress=False)
    assert run.config.mechanism.active
    assert torch.isfinite(torch.tensor(run.history[-1]["train_neg_elbo_nats"]))
