"""Loss functions against closed forms computed independently with numpy/scipy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def test_bits_per_dim_and_discretization():
  assert losses.bits_per_dim(jnp.asarray(784 * math.log(2)), 784) == pytest.approx(1.0)
  assert losses.discretization_nats(10, 1.0) == pytest.approx(10 * math.log(256))
  assert losses.discretization_nats(10, 2.0) == pytest.approx(10 * math.log(128))
