"""Every function in jaxgen.losses against closed forms computed independently (numpy/scipy)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats

from jaxgen import losses


def test_gaussian_kl_matches_closed_form_and_numeric_integral():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(5, 3))
  logvar = rng.normal(size=(5, 3))
  var = np.exp(logvar)
  expected = 0.5 * np.sum(var + mu**2 - 1 - logvar, axis=1)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.asarray(mu), jnp.asarray(logvar)),
                             expected, rtol=1e-5)
  # One dimension by numeric integration of q log(q/p): independent of the formula.
  grid = np.linspace(-30, 30, 200001)
  q = stats.norm(mu[0, 0], math.sqrt(var[0, 0]))
  integrand = q.pdf(grid) * (q.logpdf(grid) - stats.norm(0, 1).logpdf(grid))
  numeric = np.trapezoid(integrand, grid)
  got = losses.gaussian_kl(jnp.asarray(mu[:1, :1]), jnp.asarray(logvar[:1, :1]))[0]
  np.testing.assert_allclose(got, numeric, rtol=1e-4)


def test_gaussian_kl_is_zero_at_the_prior():
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((2, 4)), jnp.zeros((2, 4))), 0.0)


def test_bernoulli_nll_matches_numpy_log_likelihood():
  rng = np.random.default_rng(1)
  logits = rng.normal(scale=3.0, size=(4, 6, 6, 1))
  targets = rng.uniform(size=(4, 6, 6, 1))
  p = 1 / (1 + np.exp(-logits))
  expected = -np.sum(targets * np.log(p) + (1 - targets) * np.log(1 - p), axis=(1, 2, 3))
  np.testing.assert_allclose(losses.bernoulli_nll(jnp.asarray(logits), jnp.asarray(targets)),
                             expected, rtol=1e-5)


def test_bernoulli_nll_is_finite_for_saturated_logits():
  logits = jnp.asarray([[1e4, -1e4]])
  nll = losses.bernoulli_nll(logits, jnp.asarray([[0.0, 1.0]]))
  np.testing.assert_allclose(nll, [2e4], rtol=1e-6)
  grads = jax.grad(lambda l: losses.bernoulli_nll(l, jnp.asarray([[0.0, 1.0]])).sum())(logits)
  assert np.all(np.isfinite(grads))


def test_gaussian_nll_matches_scipy():
  rng = np.random.default_rng(2)
  mean, x = rng.normal(size=(3, 10)), rng.normal(size=(3, 10))
  log_scale = -0.7
  expected = -stats.norm(mean, math.exp(log_scale)).logpdf(x).sum(axis=1)
  np.testing.assert_allclose(losses.gaussian_nll(jnp.asarray(mean), jnp.asarray(x), log_scale),
                             expected, rtol=1e-5)


def test_gaussian_nll_with_a_scale_per_value_and_image_shapes():
  rng = np.random.default_rng(3)
  # (B, m) as InfoGAN's continuous codes: mean and log std per code, targets in [-1, 1].
  mean, log_std = rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=(4, 3))
  codes = rng.uniform(-1, 1, size=(4, 3))
  expected = -stats.norm(mean, np.exp(log_std)).logpdf(codes).sum(axis=1)
  got = losses.gaussian_nll(jnp.asarray(mean), jnp.asarray(codes), jnp.asarray(log_std))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # (B, H, W, C) images with one scale per channel, broadcast over pixels.
  mean, x = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
  log_scale = np.array([-1.0, 0.0, 0.5])
  expected = -stats.norm(mean, np.exp(log_scale)).logpdf(x).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(
      losses.gaussian_nll(jnp.asarray(mean), jnp.asarray(x), jnp.asarray(log_scale)),
      expected, rtol=1e-5)


def test_normal_log_prob_is_elementwise_scipy_logpdf():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(3, 5))
  mean = rng.normal(size=(5,))                 # Broadcast over rows.
  log_scale = rng.normal(scale=0.5, size=(3, 1))  # Broadcast over columns.
  got = losses.normal_log_prob(jnp.asarray(x), jnp.asarray(mean), jnp.asarray(log_scale))
  assert got.shape == (3, 5)
  np.testing.assert_allclose(got, stats.norm(mean, np.exp(log_scale)).logpdf(x), rtol=1e-5)
  # Scalars, and the standard normal at 0: -log(2 pi) / 2.
  np.testing.assert_allclose(losses.normal_log_prob(jnp.zeros(2), 0.0, 0.0),
                             [-0.5 * math.log(2 * math.pi)] * 2, rtol=1e-6)
  # A density: integrates to one over a grid.
  grid = np.linspace(-12, 14, 200001)
  density = np.exp(np.asarray(losses.normal_log_prob(jnp.asarray(grid), 1.0, math.log(2.0)),
                              np.float64))
  np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, rtol=1e-4)


def test_multivariate_normal_log_prob_matches_scipy():
  rng = np.random.default_rng(5)
  d = 4
  a = rng.normal(size=(d, d))
  cov = a @ a.T + 0.5 * np.eye(d)
  mean, x = rng.normal(size=d), rng.normal(size=(6, d))
  scale_tril = np.linalg.cholesky(cov)
  expected = stats.multivariate_normal(mean, cov).logpdf(x)
  args = jnp.asarray(x), jnp.asarray(mean), jnp.asarray(scale_tril)
  np.testing.assert_allclose(losses.multivariate_normal_log_prob(*args), expected, rtol=1e-5)
  given = losses.multivariate_normal_log_prob(*args, jnp.log(jnp.diagonal(args[2])))
  np.testing.assert_allclose(given, expected, rtol=1e-5)
  # A diagonal covariance is a sum of elementwise normals.
  scales = np.array([0.5, 1.0, 2.0, 3.0])
  diagonal = losses.multivariate_normal_log_prob(jnp.asarray(x), jnp.asarray(mean),
                                                 jnp.diag(jnp.asarray(scales)))
  np.testing.assert_allclose(diagonal, stats.norm(mean, scales).logpdf(x).sum(axis=1),
                             rtol=1e-5)


def test_squared_errors_match_numpy():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(3, 4, 5, 2)), rng.normal(size=(3, 4, 5, 2))
  np.testing.assert_allclose(losses.squared_error(jnp.asarray(a), jnp.asarray(b)),
                             ((a - b) ** 2).sum(axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(losses.pixel_mean_squared_error(jnp.asarray(a), jnp.asarray(b)),
                             ((a - b) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_discretized_logistic_on_a_unit_grid_matches_scipy_bin_masses():
  # 16 levels on [0, 1] (bins of width 1/15), one location and scale per value.
  rng = np.random.default_rng(7)
  levels = np.arange(16) / 15.0
  targets = rng.choice(levels, size=(3, 10))
  means = rng.uniform(-0.2, 1.2, size=(3, 10))
  scales = np.exp(rng.uniform(-3, -1, size=(3, 10)))
  dist, half = stats.logistic(loc=means, scale=scales), 0.5 / 15.0
  mass = np.where(targets < half, dist.cdf(targets + half),
                  np.where(targets > 1 - half, dist.sf(targets - half),
                           dist.cdf(targets + half) - dist.cdf(targets - half)))
  got = losses.discretized_logistic_nll(jnp.asarray(means), jnp.asarray(np.log(scales)),
                                        jnp.asarray(targets), data_low=0.0, data_range=1.0,
                                        num_levels=16)
  np.testing.assert_allclose(got, -np.log(mass).sum(axis=1), rtol=1e-4)


def test_discretized_logistic_uses_density_times_bin_width_where_the_mass_underflows():
  # A sharp logistic (scale e^-7) 0.2 away from an interior level: the bin's mass is
  # below 1e-5, so the loss is -log(pdf(x) * bin width), with the pdf from scipy.
  x, mean, log_scale = 0.0, 0.2, -7.0
  bin_width = 2.0 / 255
  expected = -(stats.logistic(mean, math.exp(log_scale)).logpdf(x) + math.log(bin_width))
  got = losses.discretized_logistic_nll(jnp.full((1, 1), mean), jnp.full((1, 1), log_scale),
                                        jnp.full((1, 1), x))
  np.testing.assert_allclose(got, [expected], rtol=1e-5)


# ------------------------------------------------------------------ classification / GAN
def test_bce_with_logits_is_elementwise_binary_cross_entropy():
  rng = np.random.default_rng(8)
  logits, targets = rng.normal(scale=3.0, size=(4, 5)), rng.uniform(size=(4, 5))
  p = special.expit(logits)
  expected = -(targets * np.log(p) + (1 - targets) * np.log1p(-p))
  got = losses.bce_with_logits(jnp.asarray(logits), jnp.asarray(targets))
  assert got.shape == (4, 5)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Stable where a naive log(sigmoid) overflows: -log sigmoid(-200) = 200 with target 1.
  np.testing.assert_allclose(losses.bce_with_logits(jnp.array([-200.0, 200.0]), 1.0),
                             [200.0, 0.0], atol=1e-6)


def test_categorical_cross_entropy_matches_scipy_log_softmax():
  rng = np.random.default_rng(9)
  logits, labels = rng.normal(scale=2.0, size=(5, 7)), rng.integers(0, 7, size=5)
  expected = -special.log_softmax(logits, axis=-1)[np.arange(5), labels]
  np.testing.assert_allclose(
      losses.categorical_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)), expected,
      rtol=1e-5)
  # (B, n, K) logits with (B, n) labels (InfoGAN codes): summed over the n codes.
  logits, labels = rng.normal(size=(3, 2, 4)), rng.integers(0, 4, size=(3, 2))
  log_probs = special.log_softmax(logits, axis=-1)
  expected = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0].sum(axis=1)
  np.testing.assert_allclose(
      losses.categorical_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)), expected,
      rtol=1e-5)
  # log_softmax, not softmax-then-log: a huge logit gap stays exact.
  np.testing.assert_allclose(losses.categorical_cross_entropy(
      jnp.array([[1000.0, 0.0]]), jnp.array([1])), [1000.0], rtol=1e-6)


def test_nonsaturating_gan_losses_match_hand_computed_values():
  log2 = math.log(2.0)
  real, fake = jnp.array([0.0, 3.0]), jnp.array([-1.0, 2.0])
  real_loss, fake_loss = losses.discriminator_losses(real, fake)
  # -log sigmoid(l) = log(1 + e^-l) for reals, -log(1 - sigmoid(l)) = log(1 + e^l) for fakes.
  np.testing.assert_allclose(real_loss, [log2, math.log1p(math.exp(-3.0))], rtol=1e-6)
  np.testing.assert_allclose(fake_loss, [math.log1p(math.exp(-1.0)), math.log1p(math.exp(2.0))],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.generator_loss(jnp.array([0.0, -2.0])),
                             [log2, math.log1p(math.exp(2.0))], rtol=1e-6)
  # One-sided smoothing 0.1: -(0.9 log s(1) + 0.1 log(1 - s(1))) = softplus(1) - 0.9.
  smoothed, unsmoothed_fake = losses.discriminator_losses(
      jnp.array([1.0]), jnp.array([1.0]), label_smoothing=0.1)
  np.testing.assert_allclose(smoothed, [math.log1p(math.e) - 0.9], rtol=1e-6)
  np.testing.assert_allclose(unsmoothed_fake, [math.log1p(math.e)], rtol=1e-6)  # Fakes: target 0.


def test_hinge_gan_losses():
  real_loss, fake_loss = losses.discriminator_losses(
      jnp.array([0.5, 2.0]), jnp.array([-2.0, 0.5]), loss="hinge")
  np.testing.assert_allclose(real_loss, [0.5, 0.0])
  np.testing.assert_allclose(fake_loss, [0.0, 1.5])
  np.testing.assert_allclose(losses.generator_loss(jnp.array([-2.0, 0.5]), "hinge"), [2.0, -0.5])


def test_unknown_gan_loss_fails_clearly():
  with pytest.raises(ValueError, match=r"Unknown GAN loss 'wasserstein'.*nonsaturating, hinge"):
    losses.discriminator_losses(jnp.zeros(2), jnp.zeros(2), loss="wasserstein")
  with pytest.raises(ValueError, match=r"Unknown GAN loss"):
    losses.generator_loss(jnp.zeros(2), "Hinge")


def test_bits_per_dim_and_discretization():
  assert losses.bits_per_dim(jnp.asarray(784 * math.log(2)), 784) == pytest.approx(1.0)
  assert losses.discretization_nats(10, 1.0) == pytest.approx(10 * math.log(256))
  assert losses.discretization_nats(10, 2.0) == pytest.approx(10 * math.log(128))


def test_log_2pi_is_defined_once():
  from jaxgen.models import gaussian
  assert losses.LOG_2PI == pytest.approx(math.log(2 * math.pi))
  assert not hasattr(gaussian, "LOG_2PI")
