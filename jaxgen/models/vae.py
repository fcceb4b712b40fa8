"""Variational autoencoders (Kingma & Welling, 2014) as Flax Linen modules, NHWC.

Every VAE here keeps one contract, which the losses and the training loop rely on:

  logits, aux = model.apply(variables, x, rng, train=True)
    x:      (B, H, W, C) float32 images, (H, W, C) == model.image_shape.
    logits: (B, H, W, C * output_params): Bernoulli logits or Gaussian means (the loss
            decides); with output_params=2 the means, then the log-scales, of a
            discretized logistic per value.
    aux:    {"mu": (B, latent), "logvar": (B, latent), "z": (B, latent)},
            z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn with `rng`.
  mu, logvar = model.apply(variables, x, method=model.encode)
  logits = model.apply(variables, z, method=model.decode)

Fields are checked when a model is constructed, so a config whose architecture
cannot produce `image_shape` fails before any compilation.

Mixed precision: `dtype='bfloat16'` (config field `model.dtype`) makes every layer
compute in bfloat16 while the parameters stay float32; mu and logvar are cast to
float32 before z is drawn, so the posterior sample, the KL and the losses (computed by
the objective from float32 casts of the outputs) keep float32 precision.
"""

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# The ConvVAE presets A, B, C live with the configs, which load without JAX.
from jaxgen.config_builders import CONV_VAE_PRESETS  # noqa: F401
from jaxgen.models.layers import Conv2d
from jaxgen.models.layers import check_image_shape
from jaxgen.models.layers import check_ints
from jaxgen.models.layers import check_output_params
from jaxgen.models.layers import check_widths
from jaxgen.models.layers import ConvTranspose
from jaxgen.models.layers import compute_dtype
from jaxgen.models.layers import conv_output_size
from jaxgen.models.layers import conv_transpose_output_size

Array = jax.Array

class _VAE(nn.Module):
  """Shared sampling and input checks; subclasses define `encode` and `decode`.

  Subclasses declare a `dtype` field (the compute dtype's name, 'float32' or
  'bfloat16') and build their layers with `dtype=self._dtype`.
  """

  @property
  def _dtype(self) -> jnp.dtype:
    return compute_dtype(self.dtype)

  def _check_fields(self) -> None:
    name = type(self).__name__
    compute_dtype(self.dtype)
    check_image_shape(name, self.image_shape)
    check_ints(name, "latent_dim", (self.latent_dim,))
    check_output_params(name, getattr(self, "output_params", 1))

  def _check_images(self, x: Array) -> None:
    expected = tuple(self.image_shape)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
      got = tuple(x.shape[1:]) if x.ndim == 4 else f"an array of shape {tuple(x.shape)}"
      raise ValueError(
          f"{type(self).__name__} expects images of shape {expected} (config field "
          f"`model.image_shape`), got {got}; set model.image_shape to the data's "
          f"shape or pick a dataset with images of shape {expected}.")

  def _check_latents(self, z: Array) -> None:
    if z.ndim != 2 or z.shape[-1] != self.latent_dim:
      raise ValueError(
          f"{type(self).__name__}.decode expects latents of shape (B, {self.latent_dim}) "
          f"(config field `model.latent_dim`), got {tuple(z.shape)}.")

  def __call__(self, x: Array, rng: Array, *, train: bool = True
               ) -> tuple[Array, dict[str, Array]]:
    """Encodes, samples z with the reparameterization trick, decodes.

    Args:
      x: (B, H, W, C) float32 images, (H, W, C) == image_shape.
      rng: PRNG key for the posterior sample.
      train: training mode (kept for the shared contract).

    Returns:
      (logits (B, H, W, C * output_params), {"mu", "logvar", "z"}: each (B, latent_dim)).
    """
    self._check_images(x)
    mu, logvar = self.encode(x, train=train)
    # float32 whatever the compute dtype: the same noise as a float32 model, and an
    # exact KL; the decoder casts z to its own dtype.
    mu, logvar = mu.astype(jnp.float32), logvar.astype(jnp.float32)
    # Reparameterized so gradients flow through mu and logvar.
    eps = jax.random.normal(rng, mu.shape, mu.dtype)
    z = mu + jnp.exp(0.5 * logvar) * eps
    logits = self.decode(z, train=train)
    return logits, {"mu": mu, "logvar": logvar, "z": z}


class _ReluConvVAE(_VAE):
  """Conv VAEs with a ReLU conv encoder, dense posterior heads, and a decoder of a dense
  layer to the last encoder feature map followed by ReLU-separated transposed convs.

  Subclasses build `encoder_convs` and `decoder_convs` in `setup`, call
  `_setup_latent_layers` there, and define `_encoder_sizes`.
  """

  def _setup_latent_layers(self) -> None:
    """The posterior heads and the decoder's dense input layer (`channels[-1]` wide)."""
    dtype = self._dtype
    self.mu_head = nn.Dense(self.latent_dim, dtype=dtype)
    self.logvar_head = nn.Dense(self.latent_dim, dtype=dtype)
    h, w = self._encoder_sizes()[-1]
    self.decoder_input = nn.Dense(h * w * self.channels[-1], dtype=dtype)

  def _checked_encoder_sizes(self, fix: str) -> list[tuple[int, int]]:
    """`_encoder_sizes()`, or a ValueError saying `fix` where a map shrinks to nothing."""
    sizes = self._encoder_sizes()
    if min(min(s) for s in sizes) < 1:
      raise ValueError(
          f"{type(self).__name__}: the encoder shrinks `model.image_shape` "
          f"{tuple(self.image_shape)} to nothing (sizes {_format_sizes(sizes)}); {fix}.")
    return sizes

  def encode(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
    """Returns the posterior's (mu, logvar), each (B, latent_dim), for (B, H, W, C) `x`."""
    del train  # No dropout or normalization.
    self._check_images(x)
    h = x
    for conv in self.encoder_convs:
      h = nn.relu(conv(h))
    h = h.reshape(h.shape[0], -1)
    return self.mu_head(h), self.logvar_head(h)

  def _latent_to_map(self, z: Array) -> Array:
    """(B, latent_dim) -> the (B, h, w, channels[-1]) map the transposed convs start from."""
    self._check_latents(z)
    h, w = self._encoder_sizes()[-1]
    return self.decoder_input(z).reshape(z.shape[0], h, w, self.channels[-1])

  def _run_decoder_convs(self, d: Array,
                         crop_sizes: Sequence[tuple[int, int]] | None = None) -> Array:
    """The transposed convs, ReLU between them; output i cropped to crop_sizes[i] if given."""
    for i, conv in enumerate(self.decoder_convs):
      d = conv(d)
      if crop_sizes is not None:
        # A transposed conv with a larger output padding only appends rows/columns at
        # the bottom/right, so cropping gives the exact per-dimension output padding.
        d = d[:, :crop_sizes[i][0], :crop_sizes[i][1]]
      if i < len(self.decoder_convs) - 1:
        d = nn.relu(d)
    return d


# Hidden-layer nonlinearities of the MLP VAE (`model.activation`).
ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class MLPVAE(_VAE):
  """Fully connected VAE: Flatten -> Dense + activation per hidden size -> (mu, logvar).

  The decoder mirrors the encoder and ends in Dense(H * W * C) logits; the
  defaults give the classic 784-512-256-2 MNIST VAE.

  Attributes:
    image_shape: (H, W, C) of the images.
    hidden_sizes: encoder hidden widths; the decoder uses them reversed.
    latent_dim: size of z.
    activation: the hidden layers' nonlinearity, 'relu' or 'tanh' (the IWAE paper's).
    output_params: decoder outputs per image value: 1, or 2 for a discretized logistic.
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters stay float32).
  """
  image_shape: tuple[int, int, int] = (28, 28, 1)
  hidden_sizes: Sequence[int] = (512, 256)
  latent_dim: int = 2
  activation: str = "relu"
  output_params: int = 1
  dtype: str = "float32"

  def __post_init__(self):
    self._check_fields()
    check_ints(type(self).__name__, "hidden_sizes", tuple(self.hidden_sizes))
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"{type(self).__name__}: `model.activation` must be one of "
                       f"{', '.join(ACTIVATIONS)}, got {self.activation!r}.")
    super().__post_init__()

  def setup(self):
    dense = functools.partial(nn.Dense, dtype=self._dtype)
    self.encoder_layers = [dense(n) for n in self.hidden_sizes]
    self.mu_head = dense(self.latent_dim)
    self.logvar_head = dense(self.latent_dim)
    self.decoder_layers = [dense(n) for n in reversed(tuple(self.hidden_sizes))]
    self.decoder_output = dense(math.prod(self.image_shape) * self.output_params)

  def encode(self, x: Array, *, train: bool = False) -> tuple[Array, Array]:
    """Returns the posterior's (mu, logvar), each (B, latent_dim), for (B, H, W, C) `x`."""
    del train  # No dropout or normalization.
    self._check_images(x)
    h = x.reshape(x.shape[0], -1)
    for layer in self.encoder_layers:
      h = ACTIVATIONS[self.activation](layer(h))
    return self.mu_head(h), self.logvar_head(h)

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C * output_params) logits for (B, latent_dim) latents `z`."""
    del train
    self._check_latents(z)
    h = z
    for layer in self.decoder_layers:
      h = ACTIVATIONS[self.activation](layer(h))
    height, width, channels = self.image_shape
    return self.decoder_output(h).reshape(z.shape[0], height, width,
                                          channels * self.output_params)


class ConvVAE(_ReluConvVAE):
  """Convolutional VAE with PyTorch-style strided convs and transposed convs.

  Encoder: per entry c of `channels`, Conv2d(c, kernel_size, stride, padding) +
  ReLU; flatten; Dense -> mu, Dense -> logvar. Decoder: Dense to the encoder's
  final (h, w, channels[-1]) map (no activation, as in the PyTorch original);
  ConvTranspose + ReLU per entry of reversed(channels[:-1]); a last
  ConvTranspose to C channels gives the logits. With the defaults on 28x28x1
  this is preset "A" (308,357 parameters).

  Attributes:
    image_shape: (H, W, C) of the images.
    channels: encoder conv widths; the decoder uses them reversed.
    kernel_size: encoder kernel size.
    stride: stride of every conv and transposed conv.
    padding: encoder padding (each side).
    decoder_kernel_size: decoder kernel size; None means kernel_size.
    decoder_padding: decoder (transposed conv) padding; None means padding.
    output_padding: decoder output_padding (bottom/right), < stride.
    latent_dim: size of z.
    output_params: decoder outputs per image value: 1, or 2 for a discretized logistic.
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters stay float32).
  """
  image_shape: tuple[int, int, int] = (28, 28, 1)
  channels: Sequence[int] = (64, 128)
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  decoder_kernel_size: int | None = None
  decoder_padding: int | None = None
  output_padding: int = 0
  latent_dim: int = 2
  output_params: int = 1
  dtype: str = "float32"

  @property
  def _decoder_kernel(self) -> int:
    return self.kernel_size if self.decoder_kernel_size is None else self.decoder_kernel_size

  @property
  def _decoder_pad(self) -> int:
    return self.padding if self.decoder_padding is None else self.decoder_padding

  def _encoder_sizes(self) -> list[tuple[int, int]]:
    """(h, w) of the image and after each encoder conv."""
    sizes = [tuple(self.image_shape[:2])]
    for _ in self.channels:
      sizes.append(tuple(conv_output_size(n, self.kernel_size, self.stride, self.padding)
                         for n in sizes[-1]))
    return sizes

  def _decoder_sizes(self) -> list[tuple[int, int]]:
    """(h, w) of the encoder's final map and after each decoder layer."""
    sizes = [self._encoder_sizes()[-1]]
    for _ in self.channels:
      sizes.append(tuple(
          conv_transpose_output_size(n, self._decoder_kernel, self.stride,
                                     self._decoder_pad, self.output_padding)
          for n in sizes[-1]))
    return sizes

  def __post_init__(self):
    self._check_fields()
    name = type(self).__name__
    check_widths(name, "channels", self.channels)
    check_ints(name, "kernel_size", (self.kernel_size, self._decoder_kernel))
    check_ints(name, "stride", (self.stride,))
    check_ints(name, "padding", (self.padding, self._decoder_pad,
                                           self.output_padding), lowest=0)
    if self.output_padding >= self.stride:
      raise ValueError(
          f"{name}: `model.output_padding` ({self.output_padding}) must be smaller "
          f"than `model.stride` ({self.stride}), as in torch.nn.ConvTranspose2d.")
    encoder_sizes = self._checked_encoder_sizes(
        "use fewer `model.channels` or a smaller `model.kernel_size`, `model.stride` or "
        "`model.padding`")
    decoder_sizes = self._decoder_sizes()
    if decoder_sizes[-1] != encoder_sizes[0]:
      raise ValueError(
          f"{name}: the decoder does not give back `model.image_shape` "
          f"{tuple(self.image_shape)}: encoder {_format_sizes(encoder_sizes)}, decoder "
          f"{_format_sizes(decoder_sizes)} (per layer (n - 1) * stride - 2 * padding "
          f"+ kernel + output_padding). Change `model.decoder_kernel_size`, "
          f"`model.decoder_padding` or `model.output_padding` (or `model.kernel_size`, "
          f"`model.padding`, `model.image_shape`).")
    super().__post_init__()

  def setup(self):
    dtype = self._dtype
    self.encoder_convs = [Conv2d(c, self.kernel_size, self.stride, self.padding, dtype=dtype)
                          for c in self.channels]
    self._setup_latent_layers()
    decoder_channels = [*reversed(tuple(self.channels[:-1])),
                        self.image_shape[-1] * self.output_params]
    self.decoder_convs = [
        ConvTranspose(c, self._decoder_kernel, self.stride, self._decoder_pad,
                      self.output_padding, dtype=dtype)
        for c in decoder_channels]

  def decode(self, z: Array, *, train: bool = False) -> Array:
    """Returns (B, H, W, C * output_params) logits for (B, latent_dim) latents `z`."""
    del train
    return self._run_decoder_convs(self._latent_to_map(z))


def _format_sizes(sizes: Sequence[tuple[int, int]]) -> str:
  return " -> ".join(f"{h}x{w}" for h, w in sizes)
