"""A ResNet VAE for small RGB images (CIFAR-10), NHWC, with the VAE contract of
`jaxgen.models.vae`.

Encoder (ResNet-18 style, He et al. 2016, CIFAR stem): Conv3x3(width) + BN + ReLU, then
four stages of `blocks_per_stage` (2) basic residual blocks with widths width * (1, 2,
4, 8); the first block of stages 2-4 has stride 2 (32x32 -> 4x4). The final map is
flattened into Dense heads for mu and logvar. With width 64 and 2 blocks per stage this
is ResNet-18's 17 conv layers before the heads.

Decoder (mirrored): Dense to the 4x4 map, then residual blocks with the widths reversed,
the first block of stages 2-4 upsampling x2 (nearest neighbour, then convs: no
checkerboard from transposed convs; the first conv reads the upsampled map without
forming it, `layers.upsampled_conv`), and a final BN + ReLU + Conv3x3 to
`output_params * C` channels: 1 per channel gives Gaussian means, 2 gives the means
then the log-scales of a discretized logistic likelihood.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import BatchNorm
from jaxgen.models.layers import Conv2d
from jaxgen.models.layers import nearest_upsample
from jaxgen.models.vae import _VAE
from jaxgen.models.layers import check_ints
from jaxgen.models.layers import check_output_params

Array = jax.Array


def _batch_norm(dtype: jnp.dtype, name: str | None = None) -> BatchNorm:
  return BatchNorm(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


class ResidualBlock(nn.Module):
  """Basic ResNet block: two 3x3 convs with BN, identity or 1x1 projection shortcut.

  Attributes:
    features: output channels.
    stride: 2 halves the size (encoder).
    upsample: True doubles the size first by nearest-neighbour repetition (decoder).
    dtype: compute dtype (parameters and BatchNorm statistics stay float32).
  """
  features: int
  stride: int = 1
  upsample: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dtype = self.dtype
    factor = 2 if self.upsample else 1
    # The first conv reads the upsampled input without forming it (`upsampled_conv`).
    # Every conv's input comes out of a BatchNorm/ReLU/residual chain: `materialize`
    # keeps XLA:CPU from recomputing the chain inside its weight gradient's transposes.
    y = Conv2d(self.features, 3, self.stride, 1, upsample=factor, materialize=True,
               use_bias=False, dtype=dtype)(x)
    y = nn.relu(_batch_norm(dtype)(y, use_running_average=not train))
    y = Conv2d(self.features, 3, 1, 1, materialize=True, use_bias=False, dtype=dtype)(y)
    y = _batch_norm(dtype)(y, use_running_average=not train)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = Conv2d(self.features, 1, self.stride, 0, materialize=True, use_bias=False,
                        dtype=dtype)(x)
      shortcut = _batch_norm(dtype)(shortcut, use_running_average=not train)
    # A 1x1 conv and BatchNorm commute with nearest upsampling (repeating each value
    # leaves the batch statistics unchanged), so the shortcut is upsampled last.
    return nn.relu(y + nearest_upsample(shortcut, factor))


class ResNetVAE(_VAE):
  """ResNet-18-style residual encoder and residual upsampling decoder.

  Attributes:
    image_shape: (H, W, C); H and W divisible by 2**(len(stage_multipliers) - 1).
    width: channels of the stem and the first stage.
    stage_multipliers: width multiplier per stage.
    blocks_per_stage: residual blocks per stage (2 = ResNet-18).
    latent_dim: size of z.
    output_params: decoder outputs per image channel: 1 (Gaussian means) or 2
      (discretized logistic means and log-scales).
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters and BatchNorm
      statistics stay float32).
  """
  image_shape: tuple[int, int, int] = (32, 32, 3)
  width: int = 64
  stage_multipliers: Sequence[int] = (1, 2, 4, 8)
  blocks_per_stage: int = 2
  latent_dim: int = 128
  output_params: int = 1
  dtype: str = "float32"

  @property
  def _widths(self) -> tuple[int, ...]:
    return tuple(self.width * m for m in self.stage_multipliers)

  @property
  def _final_size(self) -> tuple[int, int]:
    factor = 2 ** (len(self.stage_multipliers) - 1)
    return self.image_shape[0] // factor, self.image_shape[1] // factor

  def __post_init__(self):
    self._check_fields()
    name = type(self).__name__
    if not self.stage_multipliers:
      raise ValueError(f"{name}: `model.stage_multipliers` must name at least one stage.")
    check_ints(name, "width", (self.width,))
    check_ints(name, "stage_multipliers", tuple(self.stage_multipliers))
    check_ints(name, "blocks_per_stage", (self.blocks_per_stage,))
    check_output_params(name, self.output_params)
    factor = 2 ** (len(self.stage_multipliers) - 1)
    if any(n % factor for n in self.image_shape[:2]):
      raise ValueError(
          f"{name}: `model.image_shape` {tuple(self.image_shape)} must have a height and "
          f"width divisible by {factor} (one halving per stage after the first); use "
          f"fewer `model.stage_multipliers` or another image size.")
    super().__post_init__()

  def setup(self):
    dtype = self._dtype
    self.stem = Conv2d(self.width, 3, 1, 1, use_bias=False, dtype=dtype)
    self.stem_norm = _batch_norm(dtype)
    self.encoder_blocks = [
        ResidualBlock(w, stride=2 if (s > 0 and b == 0) else 1, dtype=dtype)
        for s, w in enumerate(self._widths) for b in range(self.blocks_per_stage)]
    self.mu_head = nn.Dense(self.latent_dim, dtype=dtype)
    self.logvar_head = nn.Dense(self.latent_dim, dtype=dtype)
    h, w = self._final_size
    self.decoder_input = nn.Dense(h * w * self._widths[-1], dtype=dtype)
    self.decoder_blocks = [
        ResidualBlock(w, upsample=(s > 0 and b == 0), dtype=dtype)
        for s, w in enumerate(reversed(self._widths)) for b in range(self.blocks_per_stage)]
    self.output_norm = _batch_norm(dtype)
    self.output_conv = Conv2d(self.image_shape[-1] * self.output_params, 3, 1, 1,
                              materialize=True, dtype=dtype)

  def encode(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
    """Returns the posterior's (mu, logvar), each (B, latent_dim), for (B, H, W, C) `x`."""
    self._check_images(x)
    h = nn.relu(self.stem_norm(self.stem(x), use_running_average=not train))
    for block in self.encoder_blocks:
      h = block(h, train=train)
    h = h.reshape(h.shape[0], -1)
    return self.mu_head(h), self.logvar_head(h)

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C * output_params) decoder outputs for (B, latent_dim) `z`."""
    self._check_latents(z)
    h, w = self._final_size
    d = nn.relu(self.decoder_input(z)).reshape(z.shape[0], h, w, self._widths[-1])
    for block in self.decoder_blocks:
      d = block(d, train=train)
    d = nn.relu(self.output_norm(d, use_running_average=not train))
    return self.output_conv(d)
