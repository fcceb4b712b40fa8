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


def pixel_mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean over all H * W * C values of (prediction - target)^2, per example.

  The unit is the square of the data's unit: for [-1, 1] images ('symmetric'
  preprocessing) a value of 0.01 means a typical error of 0.1 on the [-1, 1] scale,
  i.e. about 13 of 256 grey levels. Unlike the other losses here it is a mean, not a
  sum, so it does not grow with the image size.

  Args:
    predictions: (B, ...) reconstructions.
    targets: (B, ...) images, same shape.

  Returns:
    (B,) mean squared errors.
  """
  squared = (predictions - targets) ** 2
  return jnp.mean(squared.reshape(squared.shape[0], -1), axis=-1)


# PixelCNN++ clamps the log scale from below so that a collapsing scale cannot
# produce infinite densities (Salimans et al., 2017).
_MIN_LOGISTIC_LOG_SCALE = -7.0


def discretized_logistic_nll(means: jax.Array, log_scales: jax.Array, targets: jax.Array,
                             data_low: float = -1.0, data_range: float = 2.0,
                             num_levels: int = 256) -> jax.Array:
  """-log P(targets) under a discretized logistic per value, summed per example, in nats.

  Each value x lies on a grid of `num_levels` levels spanning [data_low, data_low +
  data_range] (e.g. 8-bit pixels mapped to [-1, 1]). P(x) is the logistic mass of x's
  bin, of half-width h = data_range / (2 * (num_levels - 1)); the lowest bin extends
  to -inf and the highest to +inf, so the probabilities of all levels sum to one
  (Salimans et al., 2017, PixelCNN++, with one logistic per value, no mixture). The
  result is a discrete NLL: nats / (num_dims * log 2) is directly bits/dim.

  Args:
    means: (B, ...) logistic locations, in data units.
    log_scales: (B, ...) log logistic scales (clamped below at -7), same shape.
    targets: (B, ...) values on the grid, same shape.
    data_low: the lowest level.
    data_range: the span of the levels (1 for [0, 1] data, 2 for [-1, 1]).
    num_levels: number of levels (256 for 8-bit data).

  Returns:
    (B,) negative log-probabilities.
  """
  half_bin = data_range / (2.0 * (num_levels - 1))
  log_scales = jnp.maximum(log_scales, _MIN_LOGISTIC_LOG_SCALE)
  inv_scale = jnp.exp(-log_scales)
  centered = targets - means
  plus_in = inv_scale * (centered + half_bin)
  minus_in = inv_scale * (centered - half_bin)
  log_cdf_plus = plus_in - jax.nn.softplus(plus_in)          # log sigmoid(plus_in)
  log_one_minus_cdf_minus = -jax.nn.softplus(minus_in)       # log (1 - sigmoid(minus_in))
  cdf_delta = jax.nn.sigmoid(plus_in) - jax.nn.sigmoid(minus_in)
  # Where the bin's mass underflows, use density * bin width (the midpoint rule).
  mid_in = inv_scale * centered
  log_pdf_mid = mid_in - log_scales - 2.0 * jax.nn.softplus(mid_in)
  log_interior = jnp.where(cdf_delta > 1e-5, jnp.log(jnp.maximum(cdf_delta, 1e-12)),
                           log_pdf_mid + math.log(2.0 * half_bin))
  log_probs = jnp.where(
      targets < data_low + half_bin, log_cdf_plus,
      jnp.where(targets > data_low + data_range - half_bin, log_one_minus_cdf_minus,
                log_interior))
  return -_sum_per_example(log_probs)
