"""Loss functions: pure, per example (summed over pixels / latent dims), in nats.

Every function returns one value per example (shape (B,)); the objectives average over
the batch. Names carry units so metrics stay comparable across models.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2 * math.pi)


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example, in nats.

  Args:
    mu: (B, D) posterior means.
    logvar: (B, D) posterior log-variances.

  Returns:
    (B,) KL divergences.
  """
  return 0.5 * _sum_per_example(jnp.exp(logvar) + mu**2 - 1.0 - logvar)


def bernoulli_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-log Bernoulli(targets | sigmoid(logits)) per example, in nats.

  Computed from logits as softplus(l) - t * l, which is stable for large |l|
  (no log of a saturated sigmoid). For targets in (0, 1) (grey levels) this is the
  usual binary cross-entropy, not a normalised likelihood.

  Args:
    logits: (B, ...) decoder logits.
    targets: (B, ...) targets in [0, 1], same shape.

  Returns:
    (B,) negative log-likelihoods.
  """
  return _sum_per_example(jax.nn.softplus(logits) - targets * logits)


def gaussian_nll(mean: jax.Array, targets: jax.Array,
                 log_scale: jax.Array | float) -> jax.Array:
  """-log N(targets | mean, exp(log_scale)^2) per example, in nats (a density).

  Args:
    mean: (B, ...) predicted means.
    targets: (B, ...) targets.
    log_scale: log standard deviation; a scalar or broadcastable to `mean`.

  Returns:
    (B,) negative log-densities.
  """
  log_scale = jnp.broadcast_to(jnp.asarray(log_scale, mean.dtype), mean.shape)
  z = (targets - mean) * jnp.exp(-log_scale)
  return _sum_per_example(0.5 * z**2 + log_scale + 0.5 * LOG_2PI)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Sum of squared errors per example."""
  return _sum_per_example((predictions - targets) ** 2)


def bits_per_dim(nats: jax.Array, num_dims: int) -> jax.Array:
  """Converts per-example nats to bits per dimension."""
  return nats / (num_dims * math.log(2.0))


def discretization_nats(num_dims: int, data_range: float, num_levels: int = 256) -> float:
  """Nats to add to a continuous density's NLL to compare it with discrete models.

  A density on pixels scaled to an interval of width `data_range` (1 for [0, 1], 2 for
  [-1, 1]) gives, for bins of width data_range / num_levels, a discrete NLL of about
  nll_density + num_dims * log(num_levels / data_range). Adding this makes Gaussian
  likelihoods report bits/dim on the same 8-bit scale as discrete ones.
  """
  return num_dims * math.log(num_levels / data_range)
