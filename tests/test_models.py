import math

import pytest
import torch

from vaekit.config import Config
from vaekit.errors import DataError
from vaekit.losses import elbo_estimate, elbo_loss, iwae_bound, iwae_loss
from vaekit.models.likelihoods import Bernoulli, DiscretizedLogisticMixture, Gaussian
from vaekit.registry import build_model

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "logistic-mixture"]


def model_for(arch, likelihood="bernoulli", shape=(1, 28, 28), **kw):
    cfg = Config().replace({"model": arch, "likelihood": likelihood, "image_shape": shape, "latent_dim": 3,
                            "hidden_dims": (16,) if arch == "mlp" else (4, 8), "fc_dim": 16, **kw})
    torch.manual_seed(0)
    return build_model(cfg.model)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 13, 10)])
def test_shapes(arch, likelihood, shape):
    model = model_for(arch, likelihood, shape)
    x = torch.rand(5, *shape)
    out = model(x)
    assert out.z.shape == (5, 3) and out.log_px.shape == (5,) and out.kl_per_dim.shape == (5, 3)
    assert out.params.shape[0] == 5 and out.params.shape[-2:] == shape[1:]
    assert model.log_weights(x, 4).shape == (4, 5)
    assert model.sample(2).shape == (2, *shape)
    recon = model.reconstruct(x)
    assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1
    posterior = model.encode(x)
    assert posterior.sample(torch.Generator().manual_seed(0)).shape == (5, 3)
    assert torch.isfinite(out.log_px).all()


def test_wrong_image_shape_is_a_clear_error():
    model = model_for("mlp")
    with pytest.raises(DataError, match="1x28x28.*got 3x28x28"):
        model.encode(torch.rand(2, 3, 28, 28))


def test_bernoulli_log_prob_matches_closed_form():
    logits = torch.randn(2, 1, 3, 3)
    x = torch.bernoulli(torch.rand(2, 1, 3, 3))
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3))
    torch.testing.assert_close(Bernoulli().log_prob(logits, x), expected)


def test_gaussian_log_prob_matches_torch_distributions():
    mu = torch.rand(2, 1, 4, 4)
    x = torch.rand(2, 1, 4, 4)
    expected = torch.distributions.Normal(mu, 0.3).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(Gaussian(std=0.3).log_prob(mu, x), expected)


def test_discretized_logistic_mixture_is_a_distribution_over_256_values():
    """The 256 bin masses of every pixel sum to 1, so log_prob is an honest log-probability."""
    lik = DiscretizedLogisticMixture(components=3)
    params = torch.randn(1, 9, 2, 2) * 2
    values = torch.arange(256).float() / 255
    x = values.view(256, 1, 1, 1).expand(256, 1, 2, 2)
    # log_prob sums over the 4 pixels; use one pixel at a time by scoring a 1x1 crop
    per_pixel = torch.stack([lik.log_prob(params[..., i:i + 1, j:j + 1], x[..., i:i + 1, j:j + 1])
                             for i in range(2) for j in range(2)])  # (4, 256)
    torch.testing.assert_close(per_pixel.exp().sum(1), torch.ones(4), atol=1e-4, rtol=0)
    samples = lik.sample(params.expand(50, -1, -1, -1), torch.Generator().manual_seed(0))
    assert torch.equal(samples, torch.round(samples * 255) / 255)


@pytest.mark.parametrize("likelihood", [Bernoulli(), Gaussian(), Gaussian(std=None), DiscretizedLogisticMixture(3)])
def test_bf16_outputs_and_images_are_scored_in_fp32(likelihood):
    """log_prob sums hundreds of pixels, and bf16 keeps 3 digits: a --precision bf16 step's decoder
    outputs (and any bf16 images) are scored exactly as their fp32 values are."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8).mul(255).round().div(255)
    x = (x.round() if isinstance(likelihood, Bernoulli) else x).bfloat16()
    params = torch.randn(4, likelihood.params_per_channel, 8, 8).bfloat16()
    scored = likelihood.log_prob(params, x)
    assert scored.dtype == torch.float32
    assert torch.equal(scored, likelihood.log_prob(params.float(), x.float()))


def test_kl_is_analytic_and_matches_monte_carlo():
    model = model_for("mlp")
    x = torch.rand(3, 1, 28, 28)
    q = model.encode(x)
    z = q.sample(torch.Generator().manual_seed(0), k=20000)
    mc = (q.log_prob(z) - model.prior.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, q.kl(), rtol=0.05, atol=0.05)


def test_iwae_bound_is_tighter_than_elbo_and_chunking_is_exact():
    model = model_for("mlp")
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    whole = iwae_bound(model, x, 64, g(), chunk=64)
    chunks = []
    chunked = iwae_bound(model, x, 64, g(), chunk=10, on_chunk=chunks.append)
    assert chunks == [40] * 6 + [16]  # what a progress bar is told, chunk by chunk: image-samples
    elbo = model.log_weights(x, 2000, g()).mean(0)
    assert (whole > elbo).all()
    assert whole.shape == (4,)
    assert torch.isfinite(chunked).all()
    # the same 64 samples drawn in chunks of 10 vs at once differ only by the RNG stream; with k=1 the
    # bound is the ELBO sample
    torch.testing.assert_close(iwae_bound(model, x, 1, g(), chunk=1), model.log_weights(x, 1, g())[0])


def test_elbo_estimate_in_chunks_is_the_mean_log_weight_and_below_the_iwae_bound():
    model = model_for("mlp")
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    torch.testing.assert_close(elbo_estimate(model, x, 64, g(), chunk=64), model.log_weights(x, 64, g()).mean(0))
    chunks = []
    elbo = elbo_estimate(model, x, 64, g(), chunk=10, on_chunk=chunks.append)
    assert chunks == [40] * 6 + [16]
    assert (elbo < iwae_bound(model, x, 64, g(), chunk=10)).all()  # the same 64 samples: Jensen, per image


def test_a_batch_larger_than_a_pass_is_scored_in_groups_of_images():
    model = model_for("conv")
    assert model.samples_per_pass == 200 and model_for("mlp").samples_per_pass == 1000  # the decoder's choice
    assert model_for("conv", condition="downscale").samples_per_pass == 100  # the conditional conv decoder's
    assert model_for("mlp", condition="downscale").samples_per_pass == 500  # ImageVAE's default
    model.samples_per_pass = 3
    x = torch.bernoulli(torch.rand(7, 1, 28, 28))
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    passes = []
    whole = iwae_bound(model, x, 4, g(), on_chunk=passes.append)
    assert passes == [3] * 8 + [3, 1]  # at most 3 image-samples a pass: 3 images x 1 sample, 1 image x 3
    gen = g()
    by_group = torch.cat([iwae_bound(model, part, 4, gen, chunk=1) for part in x.split(3)])
    torch.testing.assert_close(whole, by_group)
    passes.clear()
    elbo = elbo_estimate(model, x, 4, g(), on_chunk=passes.append)
    assert passes == [3] * 8 + [3, 1]
    assert (elbo < whole).all()  # the same samples: Jensen, per image


def test_elbo_loss_terms_and_free_bits():
    model = model_for("mlp")
    x = torch.bernoulli(torch.rand(8, 1, 28, 28))
    out = model(x, generator=torch.Generator().manual_seed(0))
    terms = elbo_loss(out, beta=1.0)
    torch.testing.assert_close(terms.neg_elbo, terms.recon + terms.kl)
    torch.testing.assert_close(terms.loss, terms.neg_elbo)
    big = elbo_loss(out, beta=1.0, free_bits=100.0)
    torch.testing.assert_close(big.loss, terms.recon + 100.0 * 3)
    beta4 = elbo_loss(out, beta=4.0)
    torch.testing.assert_close(beta4.loss, terms.recon + 4 * terms.kl)
    iw = iwae_loss(model, x, 5, torch.Generator().manual_seed(0))
    assert iw.loss.requires_grad and math.isfinite(iw.loss.item())


def test_slerp_endpoints():
    from vaekit.tasks.generate import slerp

    a, b = torch.randn(5), torch.randn(5)
    path = slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
