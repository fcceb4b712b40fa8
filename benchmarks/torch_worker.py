"""The same train steps in PyTorch eager (CPU, float32), timed like jax_worker.

usage: python -m benchmarks.torch_worker NAME [--min-seconds S]
Needs `pip install torch==2.13.0` (the CPU wheel on this machine; plain `torch` may pull
a CUDA build). The networks are built from the same jaxgen config as the jaxgen step
(`config.model` fields), layer for layer, with the same loss form and optimizer, so the
ratio compares the frameworks, not the architectures. The RESULT carries `num_params`;
benchmarks.run flags any difference from jaxgen's count.

Deliberate differences, none of which changes the work per step: activations are NCHW
(PyTorch's default layout), so a flatten or a dense-to-map reshape orders the features
C, H, W instead of jaxgen's H, W, C (a fixed permutation of the dense weights); Conv5VAE's
transposed convs take a per-dimension output_padding where jaxgen crops the extra row or
column; ResNetVAE upsamples with F.interpolate(mode="nearest") where jaxgen repeats rows
and columns (the same values); torch.nn.utils.clip_grad_norm_ scales the gradients by
max_norm / (norm + 1e-6), optax by max_norm / norm, once the norm exceeds max_norm.
Plain eager: no torch.compile, no channels_last, PyTorch's default (foreach) Adam.
model.dtype='bfloat16' maps to bfloat16 autocast of the forward pass (float32 parameters
and optimizer state, like jaxgen's mixed precision; autocast picks its own per-op dtypes).
"""

import argparse
import contextlib
import math
import os
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import specs
from benchmarks import timing
from jaxgen import config_lib  # Imports ml_collections only.
from jaxgen import value_range  # No JAX import either.


# ------------------------------------------------------------------ size helpers
def _conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
  return (size + 2 * padding - kernel) // stride + 1


def _conv_transpose_size(size: int, kernel: int, stride: int, padding: int,
                         output_padding: int = 0) -> int:
  return (size - 1) * stride - 2 * padding + kernel + output_padding


# ------------------------------------------------------------------ VAEs
class _VAE(nn.Module):
  """encode -> reparameterised sample -> decode, as jaxgen's `_VAE.__call__`."""

  def encode(self, x):
    """ReLU conv encoder, flatten, dense heads (the conv VAEs; others override)."""
    h = x
    for conv in self.encoder:
      h = F.relu(conv(h))
    h = h.flatten(1)
    return self.mu_head(h), self.logvar_head(h)

  def forward(self, x):
    mu, logvar = self.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return self.decode(z), mu, logvar


class MLPVAE(_VAE):
  """jaxgen.models.vae.MLPVAE: Dense + ReLU per hidden size, mirrored decoder."""

  def __init__(self, image_shape: Sequence[int], hidden_sizes: Sequence[int], latent_dim: int):
    super().__init__()
    height, width, channels = image_shape
    self.output_shape = (channels, height, width)
    dims = math.prod(image_shape)
    widths = (dims,) + tuple(hidden_sizes)
    self.encoder = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths, widths[1:])])
    self.mu_head = nn.Linear(widths[-1], latent_dim)
    self.logvar_head = nn.Linear(widths[-1], latent_dim)
    back = (latent_dim,) + tuple(reversed(tuple(hidden_sizes)))
    self.decoder = nn.ModuleList([nn.Linear(a, b) for a, b in zip(back, back[1:])])
    self.decoder_output = nn.Linear(back[-1], dims)

  def encode(self, x):
    h = x.flatten(1)
    for layer in self.encoder:
      h = F.relu(layer(h))
    return self.mu_head(h), self.logvar_head(h)

  def decode(self, z):
    h = z
    for layer in self.decoder:
      h = F.relu(layer(h))
    return self.decoder_output(h).view(-1, *self.output_shape)


class ConvVAE(_VAE):
  """jaxgen.models.vae.ConvVAE: Conv2d + ReLU per channel, dense heads, Dense (no ReLU)
  to the last map, ConvTranspose2d with ReLU between (model A: 64, 128, k4 s2 p1)."""

  def __init__(self, image_shape, channels, kernel_size, stride, padding, latent_dim,
               decoder_kernel_size=None, decoder_padding=None, output_padding=0):
    super().__init__()
    height, width, image_channels = image_shape
    dec_kernel = kernel_size if decoder_kernel_size is None else decoder_kernel_size
    dec_pad = padding if decoder_padding is None else decoder_padding
    widths = (image_channels,) + tuple(channels)
    self.encoder = nn.ModuleList([nn.Conv2d(a, b, kernel_size, stride, padding)
                                  for a, b in zip(widths, widths[1:])])
    for _ in channels:
      height = _conv_size(height, kernel_size, stride, padding)
      width = _conv_size(width, kernel_size, stride, padding)
    self.map_shape = (channels[-1], height, width)
    flat = math.prod(self.map_shape)
    self.mu_head = nn.Linear(flat, latent_dim)
    self.logvar_head = nn.Linear(flat, latent_dim)
    self.decoder_input = nn.Linear(latent_dim, flat)
    back = tuple(reversed(tuple(channels))) + (image_channels,)
    self.decoder = nn.ModuleList([
        nn.ConvTranspose2d(a, b, dec_kernel, stride, dec_pad, output_padding)
        for a, b in zip(back, back[1:])])

  def decode(self, z):
    d = self.decoder_input(z).view(-1, *self.map_shape)
    for i, conv in enumerate(self.decoder):
      d = conv(d)
      if i < len(self.decoder) - 1:
        d = F.relu(d)
    return d


class Conv5VAE(_VAE):
  """jaxgen.models.face_vaes.Conv5VAE (Frey faces): `num_layers` Conv2d + ReLU with
  initial_filters * 2**i channels and per-layer strides; Dense + ReLU to the last map;
  mirrored ConvTranspose2d whose output padding retraces the encoder sizes."""

  def __init__(self, image_shape, initial_filters, num_layers, kernel_size, stride, padding,
               latent_dim):
    super().__init__()
    strides = ((int(stride),) * num_layers if isinstance(stride, int) else tuple(stride))
    channels = tuple(initial_filters * 2**i for i in range(num_layers))
    sizes = [tuple(image_shape[:2])]
    for s in strides:
      sizes.append(tuple(_conv_size(n, kernel_size, s, padding) for n in sizes[-1]))
    widths = (image_shape[-1],) + channels
    self.encoder = nn.ModuleList([nn.Conv2d(a, b, kernel_size, s, padding)
                                  for a, b, s in zip(widths, widths[1:], strides)])
    self.map_shape = (channels[-1],) + sizes[-1]
    flat = math.prod(self.map_shape)
    self.mu_head = nn.Linear(flat, latent_dim)
    self.logvar_head = nn.Linear(flat, latent_dim)
    self.decoder_input = nn.Linear(latent_dim, flat)
    back = tuple(reversed(channels)) + (image_shape[-1],)
    layers = []
    for i, (a, b) in enumerate(zip(back, back[1:])):
      layer = num_layers - 1 - i
      s = strides[layer]
      out_pad = tuple(target - _conv_transpose_size(n, kernel_size, s, padding)
                      for n, target in zip(sizes[layer + 1], sizes[layer]))
      layers.append(nn.ConvTranspose2d(a, b, kernel_size, s, padding, out_pad))
    self.decoder = nn.ModuleList(layers)

  def decode(self, z):
    d = F.relu(self.decoder_input(z)).view(-1, *self.map_shape)
    for i, conv in enumerate(self.decoder):
      d = conv(d)
      if i < len(self.decoder) - 1:
        d = F.relu(d)
    return d


def _batch_norm(channels: int, flax_momentum: float = 0.9) -> nn.BatchNorm2d:
  # flax's momentum is the weight of the old running average, PyTorch's that of the new.
  return nn.BatchNorm2d(channels, eps=1e-5, momentum=1.0 - flax_momentum)


class CelebAConvVAE(_VAE):
  """jaxgen.models.face_vaes.CelebAConvVAE: Conv(k4 s2 p1) + BN + LeakyReLU(0.2) per
  channel, conv heads over the final map, ConvT(k4 s1 p0) from the 1x1 code, then
  ConvT(k4 s2 p1) + BN + ReLU and a final ConvT + tanh."""

  def __init__(self, image_shape, channels, latent_dim, batch_norm=True):
    super().__init__()
    side, _, image_channels = image_shape
    final = side // 2 ** len(channels)
    widths = (image_channels,) + tuple(channels)
    self.encoder = nn.ModuleList([nn.Conv2d(a, b, 4, 2, 1, bias=not batch_norm)
                                  for a, b in zip(widths, widths[1:])])
    self.encoder_norms = nn.ModuleList([_batch_norm(c) if batch_norm else nn.Identity()
                                        for c in channels])
    self.mu_head = nn.Conv2d(channels[-1], latent_dim, final)
    self.logvar_head = nn.Conv2d(channels[-1], latent_dim, final)
    back = tuple(reversed(tuple(channels)))
    self.decoder = nn.ModuleList(
        [nn.ConvTranspose2d(latent_dim, back[0], final, 1, 0, bias=not batch_norm)]
        + [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=not batch_norm)
           for a, b in zip(back, back[1:])]
        + [nn.ConvTranspose2d(back[-1], image_channels, 4, 2, 1)])
    self.decoder_norms = nn.ModuleList([_batch_norm(c) if batch_norm else nn.Identity()
                                        for c in back])

  def encode(self, x):
    h = x
    for conv, norm in zip(self.encoder, self.encoder_norms):
      h = F.leaky_relu(norm(conv(h)), 0.2)
    return self.mu_head(h).flatten(1), self.logvar_head(h).flatten(1)

  def decode(self, z):
    d = z.view(z.shape[0], -1, 1, 1)
    for i, conv in enumerate(self.decoder):
      d = conv(d)
      if i < len(self.decoder_norms):
        d = F.relu(self.decoder_norms[i](d))
    return torch.tanh(d)


class ResidualBlock(nn.Module):
  """jaxgen.models.resnet_vae.ResidualBlock: [nearest x2 upsampling], Conv3x3 (stride) +
  BN + ReLU, Conv3x3 + BN, plus the identity or a 1x1 conv + BN projection where the
  size or width changes, then ReLU; no conv biases."""

  def __init__(self, in_channels: int, features: int, stride: int = 1,
               upsample: bool = False):
    super().__init__()
    self.upsample = upsample
    self.conv1 = nn.Conv2d(in_channels, features, 3, stride, 1, bias=False)
    self.norm1 = _batch_norm(features)
    self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
    self.norm2 = _batch_norm(features)
    self.shortcut = None
    if stride != 1 or in_channels != features:
      self.shortcut = nn.Sequential(nn.Conv2d(in_channels, features, 1, stride, 0, bias=False),
                                    _batch_norm(features))

  def forward(self, x):
    if self.upsample:
      x = F.interpolate(x, scale_factor=2, mode="nearest")
    y = F.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNetVAE(_VAE):
  """jaxgen.models.resnet_vae.ResNetVAE: Conv3x3 stem (no bias) + BN + ReLU, stages of
  residual blocks with widths width * stage_multipliers (the first block of each later
  stage strides 2), flatten and Dense heads; Dense + ReLU to the smallest map, mirrored
  stages whose first blocks upsample, then BN + ReLU + Conv3x3 (bias) to
  output_params * C channels."""

  def __init__(self, image_shape, width, stage_multipliers, blocks_per_stage, latent_dim,
               output_params):
    super().__init__()
    rows, cols, channels = image_shape  # `width` is the stem's channels.
    widths = tuple(width * m for m in stage_multipliers)
    factor = 2 ** (len(widths) - 1)  # One halving per stage after the first.
    self.map_shape = (widths[-1], rows // factor, cols // factor)
    self.stem = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
    self.stem_norm = _batch_norm(width)
    blocks, previous = [], width
    for s, w in enumerate(widths):
      for b in range(blocks_per_stage):
        blocks.append(ResidualBlock(previous, w, stride=2 if (s > 0 and b == 0) else 1))
        previous = w
    self.encoder = nn.ModuleList(blocks)
    flat = math.prod(self.map_shape)
    self.mu_head = nn.Linear(flat, latent_dim)
    self.logvar_head = nn.Linear(flat, latent_dim)
    self.decoder_input = nn.Linear(latent_dim, flat)
    blocks = []
    for s, w in enumerate(reversed(widths)):
      for b in range(blocks_per_stage):
        blocks.append(ResidualBlock(previous, w, upsample=(s > 0 and b == 0)))
        previous = w
    self.decoder = nn.ModuleList(blocks)
    self.output_norm = _batch_norm(previous)
    self.output_conv = nn.Conv2d(previous, channels * output_params, 3, 1, 1)

  def encode(self, x):
    h = F.relu(self.stem_norm(self.stem(x)))
    for block in self.encoder:
      h = block(h)
    h = h.flatten(1)
    return self.mu_head(h), self.logvar_head(h)

  def decode(self, z):
    d = F.relu(self.decoder_input(z)).view(-1, *self.map_shape)
    for block in self.decoder:
      d = block(d)
    return self.output_conv(F.relu(self.output_norm(d)))


# ------------------------------------------------------------------ DCGAN
class Generator(nn.Module):
  """jaxgen.models.gan.Generator (unconditional, no g_hidden): Dense (no bias) to the
  smallest map + BN + ReLU, ConvT(k4 s2 p1, no bias) + BN + ReLU per further width, then
  ConvT(k4 s2 p1, bias) to the image channels and tanh."""

  def __init__(self, image_shape, noise_dim, g_features, bn_momentum=0.9):
    super().__init__()
    height, width, channels = image_shape
    scale = 2 ** len(g_features)
    self.map_shape = (g_features[0], height // scale, width // scale)
    self.project = nn.Linear(noise_dim, math.prod(self.map_shape), bias=False)
    self.norms = nn.ModuleList([_batch_norm(c, bn_momentum) for c in g_features])
    self.convs = nn.ModuleList([nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False)
                                for a, b in zip(g_features, g_features[1:])])
    self.output = nn.ConvTranspose2d(g_features[-1], channels, 4, 2, 1)

  def forward(self, noise):
    h = F.relu(self.norms[0](self.project(noise).view(-1, *self.map_shape)))
    for conv, norm in zip(self.convs, self.norms[1:]):
      h = F.relu(norm(conv(h)))
    return torch.tanh(self.output(h))


class Discriminator(nn.Module):
  """jaxgen.models.gan.Discriminator (no heads but the adversarial one, no d_hidden):
  Conv(k4 s2 p1) + LeakyReLU(0.2), bias and no BN on the first layer only, then a
  conv over the whole remaining map (with bias) to one logit."""

  def __init__(self, image_shape, d_features, bn_momentum=0.9):
    super().__init__()
    height, width, channels = image_shape
    widths = (channels,) + tuple(d_features)
    self.convs = nn.ModuleList([nn.Conv2d(a, b, 4, 2, 1, bias=i == 0)
                                for i, (a, b) in enumerate(zip(widths, widths[1:]))])
    self.norms = nn.ModuleList([_batch_norm(c, bn_momentum) for c in d_features[1:]])
    for _ in d_features:
      height, width = _conv_size(height, 4, 2, 1), _conv_size(width, 4, 2, 1)
    self.adv_head = nn.Conv2d(d_features[-1], 1, (height, width))

  def forward(self, images):
    h = F.leaky_relu(self.convs[0](images), 0.2)
    for conv, norm in zip(self.convs[1:], self.norms):
      h = F.leaky_relu(norm(conv(h)), 0.2)
    return self.adv_head(h).flatten()


# ------------------------------------------------------------------ builders
# model.dtype (jaxgen's compute dtype) -> the autocast dtype of the forward pass (None = float32).
COMPUTE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


def _fields(config) -> dict:
  """config.model's architecture fields (not the name, the compute dtype or `init`: the
  PyTorch layers keep their own default initialisation, which timing does not depend on)."""
  fields = {k: v for k, v in config.model.items() if k not in ("name", "dtype", "init")}
  return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def _autocast(config):
  """A factory of contexts for the forward pass: bfloat16 autocast when model.dtype asks.

  Parameters and optimizer state stay float32 either way, as in jaxgen.
  """
  dtype_name = config.model.get("dtype", "float32")
  if dtype_name not in COMPUTE_DTYPES:
    raise ValueError(f"No PyTorch counterpart of model.dtype={dtype_name!r}; known: "
                     f"{', '.join(COMPUTE_DTYPES)}.")
  dtype = COMPUTE_DTYPES[dtype_name]
  if dtype is None:
    return contextlib.nullcontext
  return lambda: torch.autocast("cpu", dtype=dtype)


def _vae(cls, allowed: Sequence[str]):
  def build(config):
    fields = _fields(config)
    unknown = set(fields) - set(allowed)
    if unknown:
      raise ValueError(f"The PyTorch {cls.__name__} has no counterpart of model field(s) "
                       f"{sorted(unknown)} (model.name={config.model.name!r}).")
    return cls(**fields)
  return build


# model.name -> builder of the PyTorch VAE from the jaxgen config.
VAES = {
    "mlp_vae": _vae(MLPVAE, ("image_shape", "hidden_sizes", "latent_dim")),
    "conv_vae": _vae(ConvVAE, ("image_shape", "channels", "kernel_size", "stride", "padding",
                               "latent_dim", "decoder_kernel_size", "decoder_padding",
                               "output_padding")),
    "conv5_vae": _vae(Conv5VAE, ("image_shape", "initial_filters", "num_layers", "kernel_size",
                                 "stride", "padding", "latent_dim")),
    "celeba_conv_vae": _vae(CelebAConvVAE, ("image_shape", "channels", "latent_dim",
                                            "batch_norm")),
    "resnet_vae": _vae(ResNetVAE, ("image_shape", "width", "stage_multipliers",
                                   "blocks_per_stage", "latent_dim", "output_params")),
}


class _ClippedAdam(torch.optim.Adam):
  """Adam on gradients clipped first to a global norm over every parameter it holds,
  as jaxgen's optimizer with optimizer.grad_clip_norm set."""

  def __init__(self, params, max_norm: float, **kwargs):
    super().__init__(params, **kwargs)
    self.max_norm = max_norm

  def step(self, closure=None):
    params = [p for group in self.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, self.max_norm)
    return super().step(closure)


def _adam(params, opt_config):
  """jaxgen's `make_optimizer` for optimizer.name='adam': the config's rate, betas and
  eps, with the global-norm clipping of optimizer.grad_clip_norm when it is set."""
  opt = config_lib.with_defaults(opt_config, "optimizer")
  if opt.name != "adam":
    raise ValueError(f"The PyTorch counterpart implements optimizer.name='adam' only, not "
                     f"{opt.name!r}.")
  kwargs = dict(lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps)
  if opt.grad_clip_norm is None:
    return torch.optim.Adam(params, **kwargs)
  return _ClippedAdam(params, opt.grad_clip_norm, **kwargs)


def _per_example(t):
  return t.flatten(1).sum(1)


def discretized_logistic_nll(means, log_scales, targets, data_low: float = -1.0,
                             data_range: float = 2.0, num_levels: int = 256):
  """jaxgen.losses.discretized_logistic_nll, op for op: -log P(targets) per example.

  One logistic per value; the bin of each of `num_levels` levels on [data_low, data_low +
  data_range], the lowest bin extended to -inf and the highest to +inf; log-scales
  clamped below at -7; the density times the bin width where the bin's mass underflows.
  """
  half_bin = data_range / (2.0 * (num_levels - 1))
  log_scales = torch.clamp(log_scales, min=-7.0)
  inv_scale = torch.exp(-log_scales)
  centered = targets - means
  plus_in = inv_scale * (centered + half_bin)
  minus_in = inv_scale * (centered - half_bin)
  log_cdf_plus = plus_in - F.softplus(plus_in)
  log_one_minus_cdf_minus = -F.softplus(minus_in)
  cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(minus_in)
  mid_in = inv_scale * centered
  log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
  log_interior = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)),
                             log_pdf_mid + math.log(2.0 * half_bin))
  log_probs = torch.where(
      targets < data_low + half_bin, log_cdf_plus,
      torch.where(targets > data_low + data_range - half_bin, log_one_minus_cdf_minus,
                  log_interior))
  return -_per_example(log_probs)


# objective.likelihood values with a PyTorch counterpart in `vae_loss`.
LIKELIHOODS = ("bernoulli", "mse", "discretized_logistic", "gaussian")


def vae_loss(config, output, x, mu, logvar):
  """jaxgen's autoencoding loss: mean over the batch of recon + beta * KL.

  `output` is the decoder's NCHW output: logits, means, or for 'discretized_logistic'
  the C means then the C log-scales along the channels.
  """
  likelihood = config.objective.get("likelihood", "bernoulli")
  if likelihood == "bernoulli":  # softplus(l) - x * l, summed over pixels.
    recon = _per_example(F.softplus(output) - x * output)
  elif likelihood == "mse":      # Mean over pixels.
    recon = ((output - x) ** 2).flatten(1).mean(1)
  elif likelihood == "gaussian":  # -log N(x | output, sigma^2), fixed sigma, summed.
    if config.objective.get("learn_scale", False):
      raise ValueError("No PyTorch counterpart of objective.learn_scale=True.")
    log_scale = config.objective.get("gaussian_log_scale", math.log(0.1))
    recon = _per_example(0.5 * ((x - output) / math.exp(log_scale)) ** 2 + log_scale
                         + 0.5 * math.log(2 * math.pi))
  elif likelihood == "discretized_logistic":
    data = value_range.of_data(config.data)
    means, log_scales = torch.chunk(output, 2, dim=1)
    recon = discretized_logistic_nll(means, log_scales, x, data.low, data.width)
  else:
    raise ValueError(f"No PyTorch counterpart of objective.likelihood={likelihood!r}.")
  kl = 0.5 * _per_example(torch.exp(logvar) + mu**2 - 1.0 - logvar)
  return torch.mean(recon + config.objective.get("beta", 1.0) * kl)


def build(config, batch_size: int):
  """PyTorch modules and a train step for a jaxgen config.

  Returns:
    (modules, step, example_batch): `step()` runs one training step in place on a fixed
    synthetic batch (images in the range the config's preprocessing gives).
  """
  name = config.model.name
  image_shape = tuple(config.model.image_shape)
  height, width, channels = image_shape
  symmetric = config.data.get("preprocessing", "unit") == "symmetric"
  x = torch.rand(batch_size, channels, height, width)
  if symmetric:
    x = x * 2 - 1

  if config.objective.name == "autoencoding":
    if name not in VAES:
      raise ValueError(f"No PyTorch counterpart of model.name={name!r}; known: "
                       f"{', '.join(list(VAES) + ['dcgan'])}.")
    likelihood = config.objective.get("likelihood", "bernoulli")
    if likelihood not in LIKELIHOODS:
      raise ValueError(f"No PyTorch counterpart of objective.likelihood={likelihood!r}; "
                       f"the benchmark covers {', '.join(map(repr, LIKELIHOODS))}.")
    model = VAES[name](config)
    optimizer = _adam(model.parameters(), config.optimizer)
    model.train()
    autocast = _autocast(config)

    def step():
      optimizer.zero_grad(set_to_none=True)
      with autocast():
        output, mu, logvar = model(x)
      loss = vae_loss(config, output.float(), x, mu.float(), logvar.float())
      loss.backward()
      optimizer.step()
      return loss

    return [model], step, x

  if config.objective.name == "adversarial" and name == "dcgan":
    fields = _fields(config)
    extra = {k: v for k, v in fields.items()
             if k in ("num_classes", "num_categorical_codes", "num_continuous_codes",
                      "g_hidden", "d_hidden") and v}
    obj = config.objective
    if (extra or obj.get("auxiliary", "none") != "none"
        or obj.get("loss", "nonsaturating") != "nonsaturating"
        or obj.get("d_steps", 1) != 1 or obj.get("g_steps", 1) != 1
        or obj.get("label_smoothing", 0.0)):
      raise ValueError("The PyTorch DCGAN covers the unconditional non-saturating GAN with "
                       "one D and one G update per step only.")
    momentum = fields.get("bn_momentum", 0.9)
    generator = Generator(image_shape, fields["noise_dim"], tuple(fields["g_features"]), momentum)
    discriminator = Discriminator(image_shape, tuple(fields["d_features"]), momentum)
    g_opt = _adam(generator.parameters(), config.optimizer)
    d_opt = _adam(discriminator.parameters(), config.optimizer)
    ema_decay = float(obj.get("ema_decay", 0.0))
    ema = [t.detach().clone() for t in _ema_tensors(generator)] if ema_decay else None
    generator.train()
    discriminator.train()
    noise_dim = fields["noise_dim"]
    autocast = _autocast(config)

    def step():
      # D update: real batch and fresh fakes, each normalised with its own statistics;
      # BCE(D(x), 1) = softplus(-l), BCE(D(G(z)), 0) = softplus(l).
      with torch.no_grad(), autocast():
        fake = generator(torch.randn(batch_size, noise_dim))
      discriminator.requires_grad_(True)
      d_opt.zero_grad(set_to_none=True)
      with autocast():
        real_logits, fake_logits = discriminator(x), discriminator(fake)
      d_loss = (F.softplus(-real_logits.float()).mean()
                + F.softplus(fake_logits.float()).mean())
      d_loss.backward()
      d_opt.step()
      # G update on new noise through the updated D; no gradients for D's weights
      # (jaxgen differentiates with respect to G's parameters only).
      discriminator.requires_grad_(False)
      g_opt.zero_grad(set_to_none=True)
      with autocast():
        logits = discriminator(generator(torch.randn(batch_size, noise_dim)))
      g_loss = F.softplus(-logits.float()).mean()
      g_loss.backward()
      g_opt.step()
      if ema is not None:
        with torch.no_grad():
          torch._foreach_lerp_(ema, _ema_tensors(generator), 1.0 - ema_decay)
      return g_loss

    return [generator, discriminator], step, x

  raise ValueError(f"No PyTorch counterpart of objective.name={config.objective.name!r} "
                   f"with model.name={name!r}.")


def _ema_tensors(generator: nn.Module) -> list[torch.Tensor]:
  """What jaxgen's EMA of G averages: its parameters and BatchNorm running statistics."""
  stats = [b for n, b in generator.named_buffers() if n.endswith(("running_mean", "running_var"))]
  return [p.detach() for p in generator.parameters()] + stats


def num_params(modules: Sequence[nn.Module]) -> int:
  """Trainable parameters (BatchNorm scale and shift included, running stats not)."""
  return sum(p.numel() for m in modules for p in m.parameters())


def param_sizes(modules: Sequence[nn.Module]) -> list[int]:
  """Sorted element counts of every parameter tensor (a layer-by-layer fingerprint)."""
  return sorted(p.numel() for m in modules for p in m.parameters())


def bench(name: str, min_seconds: float) -> dict:
  """Times the PyTorch train step of benchmark `name`; returns the RESULT dict."""
  torch.manual_seed(0)
  # The cores this process may use (taskset / cgroups), as XLA's thread pool sees them.
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  spec = specs.SPECS[name]
  modules, step, _ = build(specs.load_config(name), spec.batch_size)

  def run_block(n):
    for _ in range(n):
      loss = step()
    loss.item()  # Eager work is synchronous; this only reads the last loss.

  run_block(3)  # Warm-up: first calls allocate buffers and pick kernels.
  steps, seconds, cpu = timing.timed_loop(run_block, 5, 10, min_seconds)
  return {"task": name, "framework": "torch", "steps_per_s": steps / seconds,
          "images_per_s": steps / seconds * spec.batch_size, "cpu_s_per_step": cpu / steps,
          "num_params": num_params(modules), "batch_size": spec.batch_size,
          "torch_version": torch.__version__, "threads": torch.get_num_threads()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("task", help=f"one of {', '.join(specs.SPECS)}")
  parser.add_argument("--min-seconds", type=float, default=5.0)
  args = parser.parse_args()
  if args.task not in specs.SPECS:
    parser.error(f"unknown benchmark {args.task!r}; known: {', '.join(specs.SPECS)}")
  timing.emit(bench(args.task, args.min_seconds))


if __name__ == "__main__":
  main()
