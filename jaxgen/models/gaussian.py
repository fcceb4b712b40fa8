"""A multivariate Gaussian over flattened images, with full covariance, as a Flax module.

The covariance is held through its Cholesky factor L (Sigma = L L^T), stored
unconstrained as `scale_tril_raw`: the strictly lower triangle is L's, the diagonal
holds log diag(L), and the upper triangle is unused. Any raw matrix gives a valid
(positive definite) covariance, so gradient descent needs no projection, and
log det Sigma = 2 * sum(diag(raw)) is exact.

  log_p = model.apply(variables, x)                              # (B,) for (B, H, W, C) x
  log_p = model.apply(variables, x_mean, noise_var, method=model.expected_log_prob)
  x = model.apply(variables, rng, num, method=model.sample)      # (num, H, W, C)
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import losses

Array = jax.Array


def scale_tril_from_raw(raw: Array) -> Array:
  """L = tril(raw, -1) + diag(exp(diag(raw))): lower triangular, positive diagonal."""
  return jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diagonal(raw)))


def raw_from_scale_tril(scale_tril: Array) -> Array:
  """Inverse of `scale_tril_from_raw` for a lower triangular L with positive diagonal."""
  return jnp.tril(scale_tril, -1) + jnp.diag(jnp.log(jnp.diagonal(scale_tril)))


class Gaussian(nn.Module):
  """N(mean, L L^T) over images of shape `image_shape`, flattened row-major.

  Initialised as N(0, I). Parameters: `mean` (D,) and `scale_tril_raw` (D, D);
  D + D (D + 1) / 2 of them are free (the upper triangle of the raw matrix is unused).

  Attributes:
    image_shape: (H, W, C) of the images.
  """
  image_shape: tuple[int, int, int] = (28, 28, 1)

  def __post_init__(self):
    shape = tuple(self.image_shape)
    if len(shape) != 3 or any(not isinstance(n, int) or n < 1 for n in shape):
      raise ValueError(f"Gaussian: `model.image_shape` must be (H, W, C) positive ints, "
                       f"got {self.image_shape!r}.")
    super().__post_init__()

  @property
  def num_dims(self) -> int:
    return math.prod(self.image_shape)

  def setup(self):
    d = self.num_dims
    self.mean = self.param("mean", nn.initializers.zeros, (d,))
    self.scale_tril_raw = self.param("scale_tril_raw", nn.initializers.zeros, (d, d))

  def _flatten(self, x: Array) -> Array:
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(
          f"Gaussian expects images of shape {tuple(self.image_shape)} (config field "
          f"`model.image_shape`), got an array of shape {tuple(x.shape)}.")
    return x.reshape(x.shape[0], -1)

  def scale_tril(self) -> Array:
    """The Cholesky factor L of the covariance, (D, D)."""
    return scale_tril_from_raw(self.scale_tril_raw)

  def covariance(self) -> Array:
    """Sigma = L L^T, (D, D)."""
    scale_tril = self.scale_tril()
    return scale_tril @ scale_tril.T

  def __call__(self, x: Array) -> Array:
    """log N(x; mean, Sigma) per example, (B,), for (B, H, W, C) `x` (nats)."""
    # diag(raw) is log diag(L) exactly, so log det Sigma needs no log(exp(.)).
    return losses.multivariate_normal_log_prob(self._flatten(x), self.mean, self.scale_tril(),
                                               jnp.diagonal(self.scale_tril_raw))

  def trace_precision(self) -> Array:
    """tr(Sigma^-1) = ||L^-1||_F^2."""
    eye = jnp.eye(self.num_dims, dtype=self.scale_tril_raw.dtype)
    inverse = jax.scipy.linalg.solve_triangular(self.scale_tril(), eye, lower=True)
    return jnp.sum(inverse**2)

  def expected_log_prob(self, x_mean: Array, noise_var: float | Array) -> Array:
    """E[log N(x + n; mean, Sigma)] per example for isotropic noise n, E n = 0, Cov n = v I.

    Closed form: log N(x; mean, Sigma) - v / 2 * tr(Sigma^-1). With uniform
    dequantization noise this is the exact expected log-density of dequantized
    pixels, without sampling the noise.

    Args:
      x_mean: (B, H, W, C) the noise-free part.
      noise_var: v, the variance of each coordinate of the noise (>= 0).

    Returns:
      (B,) expected log-densities in nats.
    """
    return self(x_mean) - 0.5 * noise_var * self.trace_precision()

  def sample(self, rng: Array, num: int) -> Array:
    """`num` samples mean + L z, z ~ N(0, I), as (num, H, W, C) images (unclipped)."""
    z = jax.random.normal(rng, (num, self.num_dims), self.mean.dtype)
    return (self.mean + z @ self.scale_tril().T).reshape(num, *self.image_shape)
