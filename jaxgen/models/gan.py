"""DCGAN generator and discriminator (Radford et al., 2016) with AC-GAN and InfoGAN heads.

One module holds both networks, so one config section (`model.*`) describes a GAN and
its parameters split cleanly into {"generator": ..., "discriminator": ...}:

  model = DCGAN(image_shape=(64, 64, 3), ...)
  variables = model.init(rng, noise, images, labels=..., codes=..., continuous=...)
  images = model.apply(variables, noise, labels, codes, continuous, train=...,
                       method=model.generate)          # (B, H, W, C) in [-1, 1]
  out = model.apply(variables, images, train=..., method=model.discriminate)
    out["logit"]              (B,)     real/fake logit
    out["class_logits"]       (B, K)   AC-GAN head, when num_classes > 0
    out["code_logits"]        (B, n, d) InfoGAN Q head, when num_categorical_codes > 0
    out["continuous_mean"]    (B, m)   InfoGAN Q head, when num_continuous_codes > 0
    out["continuous_log_std"] (B, m)

The generator's input is the concatenation of the noise, the one-hot class label
(AC-GAN), the one-hot categorical codes and the continuous codes (InfoGAN); it is
checked against the model's fields, so a caller that passes the wrong number of codes
fails with the field to fix. BatchNorm statistics live in the "batch_stats" collection.

Architecture (k4 s2 p1 everywhere, which exactly doubles or halves the size):
  G: [Dense(g_hidden) + BN + ReLU] Dense -> (H/2^n, W/2^n, g_features[0]) + BN + ReLU,
     then per further entry f of g_features ConvT(f) + BN + ReLU, then ConvT(C) + tanh
     (n = len(g_features)).
  D: Conv(d_features[0]) + LeakyReLU(0.2), then Conv(f) + BN + LeakyReLU(0.2) per further
     entry, then a conv covering the whole remaining map to one logit (and the AC-GAN
     class logits), or with d_hidden > 0 a shared Dense(d_hidden) + BN + LeakyReLU and
     dense heads; the InfoGAN head Q is Dense(q_hidden) + LeakyReLU + Dense on the same
     trunk features. [.] = optional (g_hidden, d_hidden: the InfoGAN paper's MNIST nets).
The 64x64 defaults are the DCGAN of the paper: 4x4x1024 -> 8x8x512 -> 16x16x256 ->
32x32x128 -> 64x64x3, and D 128 -> 256 -> 512 -> 1024 -> 4x4 conv.

Mixed precision: `dtype='bfloat16'` (`model.dtype`) makes both networks compute in
bfloat16; parameters and BatchNorm statistics stay float32, and the outputs come back
in bfloat16 for the objective to cast to float32 before its losses.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import BatchNorm
from jaxgen.models.layers import Conv2d
from jaxgen.models.layers import conv_general_dilated
from jaxgen.models.layers import check_image_shape
from jaxgen.models.layers import check_ints
from jaxgen.models.layers import check_widths
from jaxgen.models.layers import ConvTranspose
from jaxgen.models.layers import compute_dtype
from jaxgen.models.layers import conv_output_size

Array = jax.Array

# DCGAN's initialisation: weights from N(0, 0.02).
_INIT = nn.initializers.normal(0.02)


def _conv_lowering(in_channels: int, out_channels: int, small_side: int) -> str:
  """The `layers` lowering of a k4 s2 (transposed) conv whose smaller map has side
  `small_side`: 'im2col' (dots) at the image (1-4 channels on one side) and at the 4x4
  end of the nets, else 'auto'.

  Measured on the 64x64 DCGAN, one step, in-process interleaved medians (AMD EPYC):
  one core 14.2 -> 12.5 CPU s, two cores 6.21 -> 5.90 s; im2col for every layer was
  slower (12.8 -> 13.9 s), see `layers`.
  """
  thin = min(in_channels, out_channels) <= 4
  return "im2col" if thin or small_side <= 4 else "auto"

# Widths for the two image sizes the configs use.
DCGAN_PRESETS = {
    64: dict(g_features=(1024, 512, 256, 128), d_features=(128, 256, 512, 1024)),
    28: dict(g_features=(128, 64), d_features=(64, 128)),
}


class Generator(nn.Module):
  """DCGAN generator: conditioning vector -> image in [-1, 1] (see the module docstring)."""
  image_shape: tuple[int, int, int]
  g_features: Sequence[int]
  noise_dim: int
  num_classes: int = 0
  num_categorical_codes: int = 0
  categorical_dim: int = 10
  num_continuous_codes: int = 0
  bn_momentum: float = 0.9
  g_hidden: int = 0
  dtype: jnp.dtype = jnp.float32

  def input_vector(self, noise: Array, labels: Array | None, codes: Array | None,
                   continuous: Array | None) -> Array:
    """Concatenates noise, one-hot labels, one-hot codes and continuous codes (checked)."""
    batch = noise.shape[0]
    if noise.ndim != 2 or noise.shape[1] != self.noise_dim:
      raise ValueError(f"The generator takes noise of shape (B, {self.noise_dim}) "
                       f"(`model.noise_dim`), got {tuple(noise.shape)}.")
    parts = [noise]
    if self.num_classes:
      if labels is None or labels.shape != (batch,):
        got = None if labels is None else tuple(labels.shape)
        raise ValueError(f"The generator is conditioned on {self.num_classes} classes "
                         f"(`model.num_classes`) and needs int labels of shape ({batch},), "
                         f"got {got}.")
      parts.append(jax.nn.one_hot(labels, self.num_classes, dtype=noise.dtype))
    elif labels is not None:
      raise ValueError("Labels were given, but the generator has `model.num_classes`=0; "
                       "set model.num_classes to condition it on a class.")
    got_codes = 0 if codes is None else (codes.shape[-1] if codes.ndim == 2 else -1)
    if got_codes != self.num_categorical_codes:
      raise ValueError(
          f"The generator takes {self.num_categorical_codes} categorical code(s) "
          f"(`model.num_categorical_codes`) of shape (B, {self.num_categorical_codes}), but "
          f"got {'none' if codes is None else tuple(codes.shape)}; make the number of codes "
          f"match model.num_categorical_codes.")
    if self.num_categorical_codes:
      one_hot = jax.nn.one_hot(codes, self.categorical_dim, dtype=noise.dtype)
      parts.append(one_hot.reshape(batch, -1))
    got_cont = 0 if continuous is None else (
        continuous.shape[-1] if continuous.ndim == 2 else -1)
    if got_cont != self.num_continuous_codes:
      raise ValueError(
          f"The generator takes {self.num_continuous_codes} continuous code(s) "
          f"(`model.num_continuous_codes`), but got "
          f"{'none' if continuous is None else tuple(continuous.shape)}; make the number "
          f"of codes match model.num_continuous_codes.")
    if self.num_continuous_codes:
      parts.append(continuous.astype(noise.dtype))
    return jnp.concatenate(parts, axis=-1)

  @nn.compact
  def __call__(self, noise: Array, labels: Array | None = None, codes: Array | None = None,
               continuous: Array | None = None, *, train: bool = False) -> Array:
    h = self.input_vector(noise, labels, codes, continuous)
    height, width, channels = self.image_shape
    scale = 2 ** len(self.g_features)
    dtype = self.dtype
    norm = lambda: BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                epsilon=1e-5, dtype=dtype)
    if self.g_hidden:
      h = nn.relu(norm()(nn.Dense(self.g_hidden, use_bias=False, kernel_init=_INIT,
                                  dtype=dtype)(h)))
    h = nn.Dense(height // scale * width // scale * self.g_features[0], use_bias=False,
                 kernel_init=_INIT, dtype=dtype)(h)
    h = h.reshape(h.shape[0], height // scale, width // scale, self.g_features[0])
    h = nn.relu(norm()(h))
    for features in self.g_features[1:]:
      lowering = _conv_lowering(h.shape[-1], features, min(h.shape[1:3]))
      h = ConvTranspose(features, 4, 2, 1, use_bias=False, kernel_init=_INIT, dtype=dtype,
                        lowering=lowering)(h)
      h = nn.relu(norm()(h))
    h = ConvTranspose(channels, 4, 2, 1, kernel_init=_INIT, dtype=dtype,
                      lowering=_conv_lowering(h.shape[-1], channels, min(h.shape[1:3])))(h)
    return jnp.tanh(h)


class QHead(nn.Module):
  """InfoGAN recognition head Q(c | x) on the discriminator's trunk features."""
  num_categorical_codes: int
  categorical_dim: int
  num_continuous_codes: int
  hidden: int = 128
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Array) -> dict[str, Array]:
    dense = lambda n, **kw: nn.Dense(n, kernel_init=_INIT, dtype=self.dtype, **kw)
    h = nn.leaky_relu(dense(self.hidden)(features), 0.2)
    out = {}
    batch = features.shape[0]
    if self.num_categorical_codes:
      logits = dense(self.num_categorical_codes * self.categorical_dim,
                     name="code_logits")(h)
      out["code_logits"] = logits.reshape(batch, self.num_categorical_codes,
                                          self.categorical_dim)
    if self.num_continuous_codes:
      out["continuous_mean"] = dense(self.num_continuous_codes, name="continuous_mean")(h)
      # Bounded so a confident Q cannot drive the Gaussian NLL to -inf.
      out["continuous_log_std"] = jnp.clip(
          dense(self.num_continuous_codes, name="continuous_log_std")(h), -5.0, 2.0)
    return out


class Discriminator(nn.Module):
  """DCGAN discriminator with optional AC-GAN class head and InfoGAN Q head."""
  image_shape: tuple[int, int, int]
  d_features: Sequence[int]
  num_classes: int = 0
  num_categorical_codes: int = 0
  categorical_dim: int = 10
  num_continuous_codes: int = 0
  q_hidden: int = 128
  bn_momentum: float = 0.9
  d_hidden: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, *, train: bool = False,
               mask: Array | None = None) -> dict[str, Array]:
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"The discriminator expects images of shape {tuple(self.image_shape)} "
                       f"(`model.image_shape`), got {tuple(images.shape[1:])}.")
    h = images
    # Batch statistics over the unmasked images only (eval batches are padded).
    stats_mask = None if mask is None else mask.reshape(-1, 1, 1, 1) > 0
    dtype = self.dtype
    norm = lambda: BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                epsilon=1e-5, dtype=dtype)
    for i, features in enumerate(self.d_features):
      # No BatchNorm on the first layer, as in DCGAN (it sees the raw images).
      lowering = _conv_lowering(h.shape[-1], features,
                                min(conv_output_size(n, 4, 2, 1) for n in h.shape[1:3]))
      h = Conv2d(features, 4, 2, 1, use_bias=i == 0, kernel_init=_INIT, dtype=dtype,
                 lowering=lowering)(h)
      if i:
        h = norm()(h, mask=stats_mask)
      h = nn.leaky_relu(h, 0.2)
    batch = h.shape[0]
    if self.d_hidden:
      # The InfoGAN paper's MNIST D: a dense layer shared by all heads.
      h = nn.Dense(self.d_hidden, use_bias=False, kernel_init=_INIT,
                   dtype=dtype)(h.reshape(batch, -1))
      h = norm()(h, mask=None if mask is None else stats_mask[:, :, 0, 0])
      h = nn.leaky_relu(h, 0.2)
      head = lambda n, name: nn.Dense(n, kernel_init=_INIT, dtype=dtype, name=name)
    else:
      # A "valid" conv over the whole remaining map (4x4 at 64 px): one value per image.
      covering = (h.shape[1], h.shape[2])
      head = lambda n, name: nn.Conv(n, covering, padding="VALID", kernel_init=_INIT,
                                     dtype=dtype, name=name,
                                     conv_general_dilated=conv_general_dilated)
    out = {"logit": head(1, "adv_head")(h).reshape(batch)}
    if self.num_classes:
      out["class_logits"] = head(self.num_classes, "aux_head")(h).reshape(
          batch, self.num_classes)
    if self.num_categorical_codes or self.num_continuous_codes:
      out.update(QHead(self.num_categorical_codes, self.categorical_dim,
                       self.num_continuous_codes, self.q_hidden, dtype=dtype,
                       name="q_head")(h.reshape(batch, -1)))
    return out


class DCGAN(nn.Module):
  """Generator and discriminator of one GAN (AC-GAN / InfoGAN heads by fields).

  Attributes:
    image_shape: (H, W, C); H and W must be divisible by 2 ** len(g_features).
    noise_dim: size of the generator's Gaussian noise.
    g_features: generator widths from the smallest map up (see the module docstring).
    d_features: discriminator widths, one k4 s2 conv each.
    num_classes: AC-GAN classes (0 = unconditional): G gets a one-hot label, D a class head.
    num_categorical_codes: InfoGAN categorical codes, each `categorical_dim`-way.
    categorical_dim: values per categorical code.
    num_continuous_codes: InfoGAN continuous codes (uniform in [-1, 1]).
    q_hidden: width of the Q head's hidden layer.
    g_hidden: width of an optional dense layer (+ BN + ReLU) before G's projection
      (0 = none; 1024 in the InfoGAN paper's MNIST G).
    d_hidden: width of an optional dense layer (+ BN + LeakyReLU) after D's convs, shared
      by its heads, which are then dense (0 = none: conv heads; 1024 in the InfoGAN paper).
    bn_momentum: BatchNorm running-average momentum (flax convention: weight of the old
      value).
    dtype: compute dtype of both networks, 'float32' or 'bfloat16' (parameters and
      BatchNorm statistics stay float32).
  """
  image_shape: tuple[int, int, int] = (64, 64, 3)
  noise_dim: int = 100
  g_features: Sequence[int] = DCGAN_PRESETS[64]["g_features"]
  d_features: Sequence[int] = DCGAN_PRESETS[64]["d_features"]
  num_classes: int = 0
  num_categorical_codes: int = 0
  categorical_dim: int = 10
  num_continuous_codes: int = 0
  q_hidden: int = 128
  g_hidden: int = 0
  d_hidden: int = 0
  bn_momentum: float = 0.9
  dtype: str = "float32"

  def __post_init__(self):
    name = type(self).__name__
    compute_dtype(self.dtype)
    check_image_shape(name, self.image_shape)
    check_ints(name, "noise_dim", (self.noise_dim,))
    for field in ("g_features", "d_features"):
      check_widths(name, field, getattr(self, field))
    check_ints(name, "num_classes", (self.num_classes,), lowest=0)
    check_ints(name, "num_categorical_codes", (self.num_categorical_codes,), lowest=0)
    check_ints(name, "num_continuous_codes", (self.num_continuous_codes,), lowest=0)
    check_ints(name, "g_hidden", (self.g_hidden,), lowest=0)
    check_ints(name, "d_hidden", (self.d_hidden,), lowest=0)
    check_ints(name, "categorical_dim", (self.categorical_dim,), lowest=2)
    if self.num_classes == 1:
      raise ValueError(f"{name}: `model.num_classes` must be 0 (unconditional) or >= 2; "
                       f"a binary attribute has 2 classes.")
    scale = 2 ** len(self.g_features)
    height, width, _ = self.image_shape
    if height % scale or width % scale:
      raise ValueError(
          f"{name}: the generator doubles its map {len(self.g_features)} times "
          f"(len(`model.g_features`)), so `model.image_shape` {tuple(self.image_shape)} must "
          f"have H and W divisible by {scale}; change model.g_features.")
    size = (height, width)
    for _ in self.d_features:
      size = tuple(conv_output_size(n, 4, 2, 1) for n in size)
    if min(size) < 1:
      raise ValueError(f"{name}: `model.d_features` has too many stride-2 convs for "
                       f"`model.image_shape` {tuple(self.image_shape)}.")
    super().__post_init__()

  @property
  def has_q_head(self) -> bool:
    return bool(self.num_categorical_codes or self.num_continuous_codes)

  def setup(self):
    self.generator = Generator(
        image_shape=tuple(self.image_shape), g_features=tuple(self.g_features),
        noise_dim=self.noise_dim, num_classes=self.num_classes,
        num_categorical_codes=self.num_categorical_codes,
        categorical_dim=self.categorical_dim,
        num_continuous_codes=self.num_continuous_codes, bn_momentum=self.bn_momentum,
        g_hidden=self.g_hidden, dtype=compute_dtype(self.dtype))
    self.discriminator = Discriminator(
        image_shape=tuple(self.image_shape), d_features=tuple(self.d_features),
        num_classes=self.num_classes, num_categorical_codes=self.num_categorical_codes,
        categorical_dim=self.categorical_dim,
        num_continuous_codes=self.num_continuous_codes, q_hidden=self.q_hidden,
        bn_momentum=self.bn_momentum, d_hidden=self.d_hidden,
        dtype=compute_dtype(self.dtype))

  def __call__(self, noise: Array, images: Array, labels: Array | None = None,
               codes: Array | None = None, continuous: Array | None = None, *,
               train: bool = False) -> tuple[Array, dict[str, Array]]:
    """Runs both networks (used by `init`): returns (G(noise, ...), D(images))."""
    return (self.generate(noise, labels, codes, continuous, train=train),
            self.discriminate(images, train=train))

  def generate(self, noise: Array, labels: Array | None = None, codes: Array | None = None,
               continuous: Array | None = None, *, train: bool = False) -> Array:
    """Images in [-1, 1], (B, H, W, C), from noise (B, noise_dim) and the conditioning.

    Args:
      noise: (B, noise_dim) float noise.
      labels: (B,) int class labels when `num_classes` > 0, else None.
      codes: (B, num_categorical_codes) ints in [0, categorical_dim), or None.
      continuous: (B, num_continuous_codes) floats, or None.
      train: BatchNorm uses batch statistics (and updates "batch_stats") when True.
    """
    return self.generator(noise, labels, codes, continuous, train=train)

  def discriminate(self, images: Array, *, train: bool = False,
                   mask: Array | None = None) -> dict[str, Array]:
    """The discriminator's outputs for (B, H, W, C) images in [-1, 1] (module docstring).

    Args:
      images: (B, H, W, C) images in [-1, 1].
      train: BatchNorm uses batch statistics (and updates "batch_stats") when True.
      mask: optional (B,) weights; with train=True only images with mask > 0 enter the
        batch statistics (for padded eval batches).
    """
    return self.discriminator(images, train=train, mask=mask)

