"""Convolutional VAEs for faces: a five-layer conv VAE (Frey faces) and an all-conv VAE
for 64x64 RGB faces (CelebA), NHWC, with the VAE contract of `jaxgen.models.vae`.

`Conv5VAE` (registered as `conv5_vae`): encoder of `num_layers` (5) convs with
`initial_filters * 2**i` channels, each Conv2d(kernel_size, stride_i, padding) + ReLU,
then Dense heads for mu and logvar; decoder: Dense + ReLU to the last encoder map, then
`num_layers` transposed convs with the channels mirrored (the last one gives the image
channels as Bernoulli logits or Gaussian means). Each transposed conv's output padding is
chosen per spatial dimension so the decoder retraces the encoder's sizes exactly (28x20
Frey frames have odd sizes on the way down).

`CelebAConvVAE` (registered as `celeba_conv_vae`): encoder Conv(k4, s2, p1) with
`channels` (32 -> 64 -> 128 -> 256) + BatchNorm + LeakyReLU(0.2), which takes 64x64 to
4x4, then two convs with a 4x4 (= the final map) kernel give mu and logvar. The decoder
mirrors it: ConvTranspose(k4, s1, p0) from the 1x1 code to 4x4, then ConvTranspose(k4,
s2, p1) + BatchNorm + ReLU back up to 64x64 and a tanh, so outputs lie in [-1, 1] like
the 'symmetric' images it is trained on (usually with the pixel-mean MSE + lambda * KL
loss, `objective.likelihood='mse'`).
"""

import numbers
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import BatchNorm
from jaxgen.models.layers import Conv2d
from jaxgen.models.layers import ConvTranspose
from jaxgen.models.layers import conv_output_size
from jaxgen.models.layers import conv_transpose_output_size
from jaxgen.models.vae import _ReluConvVAE
from jaxgen.models.vae import _VAE
from jaxgen.models.layers import check_ints
from jaxgen.models.layers import check_widths
from jaxgen.models.vae import _format_sizes

Array = jax.Array


class Conv5VAE(_ReluConvVAE):
  """Conv VAE with `num_layers` convs and as many mirrored transposed convs.

  With the defaults on a 28x20x1 Frey frame: channels 16-32-64-128-256, strides
  1-2-1-2-1 (28x20 -> 14x10 -> 7x5), a 2-D latent, and a decoder ending in 1-channel
  logits.

  Attributes:
    image_shape: (H, W, C) of the images.
    initial_filters: channels of the first conv; layer i has initial_filters * 2**i.
    num_layers: number of convs (and of transposed convs).
    kernel_size: kernel size of every conv and transposed conv.
    stride: one stride for every layer, or one per encoder layer (the decoder uses
      them reversed).
    padding: padding of every conv and transposed conv (each side).
    latent_dim: size of z.
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters stay float32).
  """
  image_shape: tuple[int, int, int] = (28, 20, 1)
  initial_filters: int = 16
  num_layers: int = 5
  kernel_size: int = 3
  stride: int | Sequence[int] = (1, 2, 1, 2, 1)
  padding: int = 1
  latent_dim: int = 2
  dtype: str = "float32"

  @property
  def channels(self) -> tuple[int, ...]:
    return tuple(self.initial_filters * 2**i for i in range(self.num_layers))

  @property
  def strides(self) -> tuple[int, ...]:
    if isinstance(self.stride, numbers.Integral):
      return (int(self.stride),) * self.num_layers
    return tuple(self.stride)

  def _encoder_sizes(self) -> list[tuple[int, int]]:
    sizes = [tuple(self.image_shape[:2])]
    for s in self.strides:
      sizes.append(tuple(conv_output_size(n, self.kernel_size, s, self.padding)
                         for n in sizes[-1]))
    return sizes

  def _output_paddings(self) -> list[tuple[int, int]]:
    """Per decoder layer, the (h, w) output padding that retraces the encoder sizes."""
    sizes = self._encoder_sizes()
    paddings = []
    for i in reversed(range(self.num_layers)):
      paddings.append(tuple(
          target - conv_transpose_output_size(n, self.kernel_size, self.strides[i],
                                              self.padding)
          for n, target in zip(sizes[i + 1], sizes[i])))
    return paddings

  def __post_init__(self):
    self._check_fields()
    name = type(self).__name__
    check_ints(name, "initial_filters", (self.initial_filters,))
    check_ints(name, "num_layers", (self.num_layers,))
    check_ints(name, "kernel_size", (self.kernel_size,))
    check_ints(name, "padding", (self.padding,), lowest=0)
    if len(self.strides) != self.num_layers:
      raise ValueError(f"{name}: `model.stride` must be one int or {self.num_layers} ints "
                       f"(`model.num_layers`), got {self.stride!r}.")
    check_ints(name, "stride", self.strides)
    sizes = self._checked_encoder_sizes(
        "use fewer `model.num_layers`, smaller `model.stride` or `model.kernel_size`, or "
        "more `model.padding`")
    for (pad_h, pad_w), s in zip(self._output_paddings(), reversed(self.strides)):
      if not (0 <= pad_h < s and 0 <= pad_w < s):
        raise ValueError(
            f"{name}: transposed convs with kernel {self.kernel_size}, padding "
            f"{self.padding} cannot retrace the encoder sizes {_format_sizes(sizes)} "
            f"(an output padding of ({pad_h}, {pad_w}) at stride {s} would be needed); "
            f"change `model.kernel_size`, `model.padding` or `model.stride`.")
    super().__post_init__()

  def setup(self):
    dtype = self._dtype
    self.encoder_convs = [Conv2d(c, self.kernel_size, s, self.padding, dtype=dtype)
                          for c, s in zip(self.channels, self.strides)]
    self._setup_latent_layers()
    out_channels = [*reversed(self.channels[:-1]), self.image_shape[-1]]
    self.decoder_convs = [
        ConvTranspose(c, self.kernel_size, s, self.padding, max(pads), dtype=dtype)
        for c, s, pads in zip(out_channels, reversed(self.strides), self._output_paddings())]

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C) logits for (B, latent_dim) latents `z`."""
    del train
    d = nn.relu(self._latent_to_map(z))
    # Each transposed conv gives back the size of the encoder map it mirrors.
    return self._run_decoder_convs(d, self._encoder_sizes()[-2::-1])


class CelebAConvVAE(_VAE):
  """All-convolutional VAE for square RGB faces (64x64 by default), tanh output.

  Attributes:
    image_shape: (H, W, C); H == W, divisible by 2**len(channels).
    channels: encoder widths of the k4 s2 p1 convs; the decoder mirrors them.
    latent_dim: size of z.
    batch_norm: BatchNorm after every hidden conv (statistics in the state's
      model_state); False gives a plain conv net.
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters and BatchNorm
      statistics stay float32).
  """
  image_shape: tuple[int, int, int] = (64, 64, 3)
  channels: Sequence[int] = (32, 64, 128, 256)
  latent_dim: int = 128
  batch_norm: bool = True
  dtype: str = "float32"

  # Decoder outputs lie in [-1, 1]: train it on 'symmetric' images.
  output_range = (-1.0, 1.0)

  @property
  def _final_size(self) -> int:
    return self.image_shape[0] // 2 ** len(self.channels)

  def __post_init__(self):
    self._check_fields()
    name = type(self).__name__
    check_widths(name, "channels", self.channels)
    height, width, _ = self.image_shape
    factor = 2 ** len(self.channels)
    if height != width or height % factor or height < factor:
      raise ValueError(
          f"{name}: `model.image_shape` {tuple(self.image_shape)} must be square with a "
          f"side divisible by 2**len(model.channels) = {factor} (each conv halves it); "
          f"use 64x64 images (e.g. data.image_size=64) or change `model.channels`.")
    super().__post_init__()

  def _norm(self, name: str) -> nn.Module | None:
    if not self.batch_norm:
      return None
    return BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self._dtype, name=name)

  def setup(self):
    dtype = self._dtype
    # `materialize`: the weight gradients read their operands from buffers of their own
    # (`layers.conv2d`); on 2 cores the step went 3.70 -> 4.01 steps/s (interleaved
    # medians), within noise on one core.
    self.encoder_convs = [Conv2d(c, 4, 2, 1, materialize=True, use_bias=not self.batch_norm,
                                 dtype=dtype)
                          for c in self.channels]
    self.encoder_norms = [self._norm(f"encoder_norm_{i}") for i in range(len(self.channels))]
    k = self._final_size
    # Kernels covering the whole k x k map: each head is one dot (`layers.conv2d`).
    self.mu_head = Conv2d(self.latent_dim, k, dtype=dtype)
    self.logvar_head = Conv2d(self.latent_dim, k, dtype=dtype)
    widths = list(reversed(tuple(self.channels)))
    # 1x1 code -> k x k map, then each k4 s2 p1 transposed conv doubles the size.
    self.decoder_convs = (
        [ConvTranspose(widths[0], k, 1, 0, use_bias=not self.batch_norm, dtype=dtype)]
        + [ConvTranspose(c, 4, 2, 1, use_bias=not self.batch_norm, dtype=dtype,
                         materialize=True)
           for c in widths[1:]]
        + [ConvTranspose(self.image_shape[-1], 4, 2, 1, dtype=dtype, materialize=True)])
    self.decoder_norms = [self._norm(f"decoder_norm_{i}") for i in range(len(widths))]

  def encode(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
    """Returns the posterior's (mu, logvar), each (B, latent_dim), for (B, H, W, C) `x`."""
    self._check_images(x)
    h = x
    for conv, norm in zip(self.encoder_convs, self.encoder_norms):
      h = conv(h)
      if norm is not None:
        h = norm(h, use_running_average=not train)
      h = nn.leaky_relu(h, 0.2)
    mu = self.mu_head(h).reshape(x.shape[0], self.latent_dim)
    logvar = self.logvar_head(h).reshape(x.shape[0], self.latent_dim)
    return mu, logvar

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C) images in [-1, 1] for (B, latent_dim) latents `z`."""
    self._check_latents(z)
    d = z.reshape(z.shape[0], 1, 1, self.latent_dim)
    for i, conv in enumerate(self.decoder_convs):
      d = conv(d)
      if i < len(self.decoder_norms):
        if self.decoder_norms[i] is not None:
          d = self.decoder_norms[i](d, use_running_average=not train)
        d = nn.relu(d)
    return jnp.tanh(d)
