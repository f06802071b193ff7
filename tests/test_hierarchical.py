import pytest
import torch

from vaekit.config import Config
from vaekit.errors import ConfigError
from vaekit.engine.trainer import fit
from vaekit.losses import elbo_loss, iwae_bound
from vaekit.models.hierarchical import gaussian_kl, gaussian_log_prob
from vaekit.nn.blocks import ACTIVATIONS, Bottleneck
from vaekit.registry import build_model
from conftest import tiny_config

HVAE = {"model": "hvae", "latent_dim": 2, "hvae_width": 8, "hvae_middle": 4, "hvae_groups": (1, 2),
        "hvae_encoder_blocks": 1}


def hvae(shape=(1, 8, 8), likelihood="bernoulli", stride=1):
    torch.manual_seed(0)
    return build_model(Config().replace({**HVAE, "image_shape": shape, "likelihood": likelihood,
                                         "hvae_stride": stride}).model)


@pytest.mark.parametrize("shape,stride", [((1, 8, 8), 1), ((3, 7, 10), 1), ((3, 8, 12), 2), ((1, 8, 8), 4)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic-mixture"])
def test_shapes_and_interface(shape, stride, likelihood):
    model = hvae(shape, likelihood, stride)
    x = torch.rand(4, *shape)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.log_px.shape == (4,) and out.kl_per_dim.shape == (4, 3)  # one KL per latent group
    assert (out.kl_per_dim >= 0).all()
    assert model.log_weights(x, 5).shape == (5, 4)
    assert model.sample(3).shape == (3, *shape)
    assert model.reconstruct(x).shape == x.shape
    z = model.encode(x).sample()
    assert z.shape == (4, model.latent_dim) and model.decode(z).shape == (4, *shape)


def test_stride_must_divide_the_image():
    with pytest.raises(ConfigError, match="hvae_stride 3 must divide the image size 8x8"):
        hvae((1, 8, 8), stride=3)


def test_strided_output_bias_starts_at_the_mean_image():
    """Each sub-pixel of the shuffled output gets its own bias: the mean image of a pixel-periodic
    pattern is reproduced exactly."""
    model = hvae((1, 8, 8), stride=2)
    mean = torch.tensor([[0.2, 0.7], [0.4, 0.9]]).repeat(4, 4)[None]
    model.init_output_bias(mean)
    with torch.no_grad():
        model.out.weight.zero_()
        params, _, _ = model.top_down(1, temperature=0.0)
    torch.testing.assert_close(torch.sigmoid(params[0]), mean)


def test_kl_formula_matches_monte_carlo():
    qm, qs, pm, ps = torch.randn(4), torch.randn(4) * 0.3, torch.randn(4), torch.randn(4) * 0.3
    z = qm + qs.exp() * torch.randn(200000, 4)
    mc = (gaussian_log_prob(z, qm, qs) - gaussian_log_prob(z, pm, ps)).mean(0)
    torch.testing.assert_close(mc, gaussian_kl(qm, qs, pm, ps), rtol=0.05, atol=0.02)


def test_log_weights_average_to_the_elbo_and_iwae_is_tighter():
    """E_q[log w] is the ELBO: the sampled log-ratios and the analytic KLs must agree on average."""
    model = hvae()
    x = torch.bernoulli(torch.rand(2, 1, 8, 8))
    with torch.no_grad():
        log_w = model.log_weights(x, 2000, torch.Generator().manual_seed(0))
        outs = [model(x, generator=torch.Generator().manual_seed(i)) for i in range(200)]
    elbo = torch.stack([o.log_px - o.kl for o in outs]).mean(0)
    torch.testing.assert_close(log_w.mean(0), elbo, rtol=0.01, atol=0.5)
    bound = iwae_bound(model, x, 256, torch.Generator().manual_seed(1), chunk=50)
    assert (bound > elbo).all()


def test_prior_sampling_is_seeded():
    model = hvae()
    a = model.sample(2, generator=torch.Generator().manual_seed(3))
    b = model.sample(2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_trains_saves_and_reloads(tmp_path):
    cfg = tiny_config(**HVAE, epochs=2, free_bits=0.1, skip_grad_norm=1e6, ema_decay=0.9)
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_model(cfg.replace({"image_shape": (1, 8, 8)}).model).state_dict().items()}
    run = fit(cfg, tmp_path / "run", progress=False)
    after = run.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)
    assert run.history[-1]["train_neg_elbo_nats"] < run.history[0]["train_neg_elbo_nats"] + 1


def test_huge_gradients_are_skipped(tmp_path):
    run = fit(tiny_config(**HVAE, epochs=1, skip_grad_norm=1e-9), tmp_path / "run", progress=False)
    assert run.history[-1]["skipped_updates"] == 4  # every update of the epoch was an outlier
    assert run.history[-1]["step"] == 0


def test_elbo_loss_free_bits_per_group():
    model = hvae()
    out = model(torch.bernoulli(torch.rand(4, 1, 8, 8)))
    terms = elbo_loss(out, free_bits=1e4)
    torch.testing.assert_close(terms.loss, terms.recon + 3 * 1e4)


def test_cell_activation_is_set_by_config():
    """The activation has no weights: the same seed gives the same weights, and only the outputs differ."""
    models = {}
    for name in ACTIVATIONS:
        torch.manual_seed(0)
        models[name] = build_model(Config().replace({**HVAE, "image_shape": (1, 8, 8), "hvae_activation": name}).model)
        cells = [m for m in models[name].modules() if isinstance(m, Bottleneck)]
        assert cells and all(cell.activation is ACTIVATIONS[name] for cell in cells)
    x = torch.rand(2, 1, 8, 8)
    gelu, relu = models["gelu"], models["relu"]
    assert all(torch.equal(a, b) for a, b in zip(gelu.state_dict().values(), relu.state_dict().values()))
    with torch.no_grad():
        gelu.out.weight.normal_()  # the zero-initialized paths would otherwise hide the cells
        relu.out.weight.copy_(gelu.out.weight)
        assert not torch.allclose(gelu.reconstruct(x), relu.reconstruct(x))
