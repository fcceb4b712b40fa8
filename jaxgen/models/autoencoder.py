"""A fully connected, deterministic autoencoder for 64x64 RGB images, NHWC.

  encoder: flatten (12288) -> Dense 4096 + BN + ReLU -> Dense 2048 + BN + ReLU = code
  decoder: code -> Dense 4096 + BN + ReLU -> Dense 12288 -> tanh -> (64, 64, 3)

Outputs lie in [-1, 1], so it trains on 'symmetric' images, usually with the MSE loss
(`objective.likelihood='mse'`). It keeps the contract of the autoencoding family with
`variational = False` (no KL, no posterior):

  out, {"z": code} = model.apply(variables, x, rng, train=...)
  code = model.apply(variables, x, method=model.encode)       # (B, latent_dim), >= 0
  out = model.apply(variables, code, method=model.decode)
  codes = model.apply(variables, rng, num, method=model.sample_latent)

The code is the output of a BatchNorm + ReLU. That BatchNorm standardises each code
element over the data before its learned affine map, so relu(scale * eps + bias) with
eps ~ N(0, I) draws codes with (roughly) the data's per-element marginals, treated as
independent: `sample_latent`'s stand-in for a prior, which an autoencoder does not have.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.vae import _VAE
from jaxgen.models.layers import BatchNorm
from jaxgen.models.layers import check_ints

Array = jax.Array


def _batch_norm(name: str, dtype: jnp.dtype) -> BatchNorm:
  return BatchNorm(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


class FCAutoencoder(_VAE):
  """Fully connected autoencoder with BatchNorm, ReLU and a tanh output.

  Attributes:
    image_shape: (H, W, C) of the images (64x64x3 for the face experiments).
    hidden_dim: width of the hidden layer on both sides (4096).
    latent_dim: size of the code (2048).
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters and BatchNorm
      statistics stay float32).
  """
  image_shape: tuple[int, int, int] = (64, 64, 3)
  hidden_dim: int = 4096
  latent_dim: int = 2048
  dtype: str = "float32"

  variational = False
  output_range = (-1.0, 1.0)

  def __post_init__(self):
    self._check_fields()
    check_ints(type(self).__name__, "hidden_dim", (self.hidden_dim,))
    super().__post_init__()

  def setup(self):
    dtype = self._dtype
    self.encoder_hidden = nn.Dense(self.hidden_dim, dtype=dtype)
    self.encoder_norm = _batch_norm("encoder_norm", dtype)
    self.encoder_code = nn.Dense(self.latent_dim, dtype=dtype)
    self.code_norm = _batch_norm("code_norm", dtype)
    self.decoder_hidden = nn.Dense(self.hidden_dim, dtype=dtype)
    self.decoder_norm = _batch_norm("decoder_norm", dtype)
    self.decoder_output = nn.Dense(math.prod(self.image_shape), dtype=dtype)

  def encode(self, x: Array, *, train: bool = False) -> Array:
    """Returns the (B, latent_dim) code of (B, H, W, C) images."""
    self._check_images(x)
    h = x.reshape(x.shape[0], -1)
    h = nn.relu(self.encoder_norm(self.encoder_hidden(h), use_running_average=not train))
    return nn.relu(self.code_norm(self.encoder_code(h), use_running_average=not train))

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C) images in [-1, 1] for (B, latent_dim) codes."""
    self._check_latents(z)
    h = nn.relu(self.decoder_norm(self.decoder_hidden(z), use_running_average=not train))
    return jnp.tanh(self.decoder_output(h)).reshape(z.shape[0], *self.image_shape)

  def __call__(self, x: Array, rng: Array, *, train: bool = True
               ) -> tuple[Array, dict[str, Array]]:
    """Encodes and decodes; `rng` is unused (kept for the family's contract).

    Returns:
      (reconstructions (B, H, W, C) in [-1, 1], {"z": code (B, latent_dim)}).
    """
    del rng
    z = self.encode(x, train=train)
    return self.decode(z, train=train), {"z": z}

  def sample_latent(self, rng: Array, num: int, *, train: bool = False) -> Array:
    """`num` codes relu(scale * eps + bias), eps ~ N(0, I), from the code BatchNorm."""
    del train
    norm = self.code_norm.variables["params"]
    eps = jax.random.normal(rng, (num, self.latent_dim))
    return nn.relu(norm["scale"] * eps + norm["bias"])
