"""Every loss and log-density of the package: pure functions, in nats.

Argument order, everywhere:
  * losses (NLLs, cross-entropies, errors) take the model's prediction or distribution
    parameters first, then the targets, then any further parameter that is often a
    shared scalar: `gaussian_nll(mean, targets, log_scale)`, `bernoulli_nll(logits,
    targets)`, `categorical_cross_entropy(logits, labels)`. (`discretized_logistic_nll`
    keeps its two per-value parameters together before the targets.)
  * log-densities (`*_log_prob`) take the point first, then the distribution's
    parameters, as scipy.stats' `logpdf(x, loc, scale)`: `normal_log_prob(x, mean,
    log_scale)`.
Scales are log standard deviations (`log_scale`), except `gaussian_kl`, which takes a
VAE posterior's log-variance.

Shapes: a function returns one value per example (shape (B,), summed over pixels /
latent dimensions) unless its docstring says elementwise; the objectives average over
the batch. Names carry units so metrics stay comparable across models.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2 * math.pi)
GAN_LOSSES = ("nonsaturating", "hinge")


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


# ------------------------------------------------------------------ log-densities
def normal_log_prob(x: jax.Array, mean: jax.Array | float,
                    log_scale: jax.Array | float) -> jax.Array:
  """log N(x; mean, exp(log_scale)^2), elementwise (no sum), in nats.

  Args:
    x: points.
    mean: means, broadcastable to `x`.
    log_scale: log standard deviations, broadcastable to `x`.

  Returns:
    Log-densities of the broadcast shape of the arguments.
  """
  z = (x - mean) * jnp.exp(-log_scale)
  return -0.5 * z**2 - log_scale - 0.5 * LOG_2PI


def multivariate_normal_log_prob(x: jax.Array, mean: jax.Array, scale_tril: jax.Array,
                                 log_diag_scale: jax.Array | None = None) -> jax.Array:
  """log N(x; mean, L L^T) per example for a full covariance given by its Cholesky factor.

  Args:
    x: (B, D) points.
    mean: (D,) mean.
    scale_tril: (D, D) lower triangular L with positive diagonal.
    log_diag_scale: (D,) log diag(L) when the caller holds it exactly (it then is not
      recomputed as log(diag(L)), which would round); None computes it from L.

  Returns:
    (B,) log-densities.
  """
  # Solve L w = (x - mean) instead of inverting Sigma: stable and O(D^2) per example.
  centred = (x - mean).T
  w = jax.scipy.linalg.solve_triangular(scale_tril, centred, lower=True)
  mahalanobis_sq = jnp.sum(w**2, axis=0)
  if log_diag_scale is None:
    log_diag_scale = jnp.log(jnp.diagonal(scale_tril))
  half_log_det = jnp.sum(log_diag_scale)  # log det(Sigma) / 2
  return -0.5 * mahalanobis_sq - half_log_det - 0.5 * x.shape[-1] * LOG_2PI


# ------------------------------------------------------------------ VAE / likelihood losses
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
  return _sum_per_example(bce_with_logits(logits, targets))


def gaussian_nll(mean: jax.Array, targets: jax.Array,
                 log_scale: jax.Array | float) -> jax.Array:
  """-log N(targets | mean, exp(log_scale)^2) per example, in nats (a density).

  Args:
    mean: (B, ...) predicted means.
    targets: (B, ...) targets.
    log_scale: log standard deviation; a scalar or broadcastable to `mean`.

  Returns:
    (B,) negative log-densities (the InfoGAN continuous-code NLL too, for (B, m) codes).
  """
  # In the mean's dtype and shape: a log_scale larger than the mean is an error, not a
  # silent broadcast of the sum.
  log_scale = jnp.broadcast_to(jnp.asarray(log_scale, mean.dtype), mean.shape)
  return -_sum_per_example(normal_log_prob(targets, mean, log_scale))


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


# ------------------------------------------------------------------ classification / GAN losses
def bce_with_logits(logits: jax.Array, targets: jax.Array | float) -> jax.Array:
  """Binary cross-entropy -[t log sigmoid(l) + (1 - t) log(1 - sigmoid(l))], elementwise.

  Computed as softplus(l) - t * l, stable for large |l|.
  """
  return jax.nn.softplus(logits) - targets * logits


def categorical_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """-log softmax(logits)[label] per example, in nats, summed over any middle axes.

  Args:
    logits: (B, K) or (B, n, K) unnormalised logits (never probabilities).
    labels: (B,) or (B, n) int labels in [0, K).

  Returns:
    (B,) cross-entropies.
  """
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_probs, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return -picked.reshape(picked.shape[0], -1).sum(axis=-1)


def discriminator_losses(real_logits: jax.Array, fake_logits: jax.Array,
                         loss: str = "nonsaturating",
                         label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Per-example GAN discriminator losses on real and on fake images.

  Args:
    real_logits: (B,) D's logits for real images.
    fake_logits: (B,) D's logits for generated images.
    loss: 'nonsaturating' (BCE) or 'hinge'.
    label_smoothing: one-sided smoothing: real targets are 1 - label_smoothing (BCE only).

  Returns:
    (real_loss, fake_loss), each (B,).
  """
  _check_gan_loss(loss)
  if loss == "hinge":
    return jax.nn.relu(1.0 - real_logits), jax.nn.relu(1.0 + fake_logits)
  return bce_with_logits(real_logits, 1.0 - label_smoothing), bce_with_logits(fake_logits, 0.0)


def generator_loss(fake_logits: jax.Array, loss: str = "nonsaturating") -> jax.Array:
  """Per-example GAN generator loss: softplus(-D(G(z))) (non-saturating) or -D(G(z)) (hinge)."""
  _check_gan_loss(loss)
  if loss == "hinge":
    return -fake_logits
  return bce_with_logits(fake_logits, 1.0)


def _check_gan_loss(loss: str) -> None:
  # A misspelt name would otherwise silently train with the BCE loss.
  if loss not in GAN_LOSSES:
    raise ValueError(f"Unknown GAN loss {loss!r}; known: {', '.join(GAN_LOSSES)}.")
