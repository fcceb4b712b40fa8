"""The `autoencoding` family: VAEs, beta-VAEs and deterministic autoencoders.

loss = reconstruction term + beta * KL(q(z|x) || p(z)), per example, averaged over the
batch. The reconstruction term is set by `objective.likelihood`:

  bernoulli             -log p(x|z) in nats, summed over pixels; targets in [0, 1].
  gaussian              -log N(x | decoder mean, sigma^2) in nats (a density), summed.
  discretized_logistic  -log P(x|z) in nats for 8-bit data, summed: one logistic per
                        value with a per-value mean and log-scale (the decoder outputs
                        2 * C channels: means, then log-scales).
  mse                   the pixel-mean squared error (mean over H * W * C, in squared
                        data units), not a likelihood: loss = mse + beta * KL, with beta
                        the weight "lambda" in squared data units per nat of KL.

For the three likelihoods the ELBO itself (beta = 1) is always reported, whatever beta
trains with. A model whose class attribute `variational` is False (a deterministic
autoencoder, e.g. `fc_autoencoder`) has no KL: loss = reconstruction term, beta unused.

With `model.dtype='bfloat16'` the model computes in bfloat16 (parameters, optimizer state
and BatchNorm statistics stay float32); every model output is cast to float32 before the
losses, so the reconstruction terms, KL and metrics are float32 sums.

Models with BatchNorm keep its statistics in `TrainState.model_state`
({"batch_stats": ...}): training steps use batch statistics and update the running
averages; eval, reconstructions, sampling and encoding use the running averages.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
import ml_collections

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import losses
from jaxgen import models
from jaxgen import registry
from jaxgen import value_range
from jaxgen.models import param_init
from jaxgen.objectives import base

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic", "mse")
# Likelihoods with a normalized -log p(x|z) in nats ('mse' is an error, not one).
NORMALIZED_LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic")
# Decoder output channels per image channel, by likelihood.
_OUTPUTS_PER_CHANNEL = {"bernoulli": 1, "gaussian": 1, "discretized_logistic": 2, "mse": 1}


def _is_variational(model_cls: type) -> bool:
  """False for deterministic autoencoders (their model class sets `variational = False`)."""
  return bool(getattr(model_cls, "variational", True))


def _has_likelihood(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` trains a VAE whose decoder has a normalized likelihood."""
  model_cls = models.MODELS.get(config.model.name)
  return (model_cls is not None and _is_variational(model_cls)
          and config_lib.with_defaults(config.objective, AutoencodingObjective.FIELD_DEFAULTS
                                       ).likelihood in NORMALIZED_LIKELIHOODS)


class AutoencodingObjective(base.Objective):
  """Autoencoder objective: VAE / beta-VAE, or a deterministic autoencoder.

  Config fields (`config.objective`): likelihood ('bernoulli' | 'gaussian' |
  'discretized_logistic' | 'mse'), beta (KL weight, 1 = the ELBO; for 'mse' the
  weight lambda of the KL against the pixel-mean squared error), gaussian_log_scale
  (fixed log std of the Gaussian likelihood, in data units), learn_scale (learn one
  global log std instead).
  """

  guarded_metrics = ("loss", "grad_norm")
  headline_metric = "elbo_nats"
  # Optional `objective.*` fields and their defaults.
  FIELD_DEFAULTS = {"likelihood": "bernoulli", "beta": 1.0, "learn_scale": False,
                    "gaussian_log_scale": math.log(0.1)}

  def __init__(self, config: ml_collections.ConfigDict):
    model_fields = models.module_fields(config.model)
    if "image_shape" in model_fields:
      model_fields["image_shape"] = tuple(model_fields["image_shape"])
    self.model = models.get_model(config.model.name, **model_fields)
    self.param_init = param_init.scheme_of(config.model)
    self.variational = _is_variational(type(self.model))
    obj = config_lib.with_defaults(config.objective, self.FIELD_DEFAULTS)
    self.likelihood = registry.lookup(
        "likelihood", obj.likelihood,
        {k: k for k in LIKELIHOODS}, "objective.likelihood")
    self.beta = float(obj.beta)
    self.learn_scale = bool(obj.learn_scale)
    self.fixed_log_scale = float(obj.gaussian_log_scale)
    self.tx = base.make_optimizer(config.optimizer)
    self.value_range = value_range.of_data(config.data)
    self._check_value_range(config.model.name)
    self.sample_description = (
        "decoder means of z ~ N(0, I)" if self.variational
        else "decoder outputs of codes from the autoencoder's sample_latent")
    if self.likelihood == "mse":
      self.headline_metric = "mse"
    elif not self.variational:
      self.headline_metric = "nll_nats"

  def _check_value_range(self, model_name: str) -> None:
    """The likelihood and the model's output range must suit the data's range."""
    data = self.value_range
    if self.likelihood == "bernoulli" and data.interval != (0.0, 1.0):
      raise errors.ConfigError(
          f"objective.likelihood='bernoulli' needs targets in [0, 1], but "
          f"data.preprocessing={data.preprocessing!r} gives {list(data.interval)}; use "
          f"data.preprocessing='unit' or 'binarize_*', or objective.likelihood='gaussian'.")
    if self.likelihood == "discretized_logistic" and data.levels != 256:
      raise errors.ConfigError(
          f"objective.likelihood='discretized_logistic' models 8-bit values, but "
          f"data.preprocessing={data.preprocessing!r} gives {data.levels} levels; use "
          f"'unit' or 'symmetric', or objective.likelihood='bernoulli'.")
    output_range = getattr(self.model, "output_range", None)
    if output_range is not None and data.interval != tuple(output_range):
      raise errors.ConfigError(
          f"model.name={model_name!r} outputs values in {list(output_range)} (tanh), "
          f"but data.preprocessing={data.preprocessing!r} gives images in "
          f"{list(data.interval)}; set data.preprocessing='symmetric' (and a likelihood "
          f"for [-1, 1] data: 'mse' or 'gaussian').")

  # ---------------------------------------------------------------- model calls
  def _apply(self, params, model_state, *args, train: bool, method=None):
    """Applies the model; returns (output, model_state after the call).

    In training mode BatchNorm statistics (if any) are mutable and come back updated;
    otherwise the running averages are used and `model_state` is returned as is. The
    output is float32 whatever the model's compute dtype.
    """
    variables = {"params": params["model"], **(model_state or {})}
    kwargs = {} if method is None else {"method": method}
    if train and model_state:
      out, updates = self.model.apply(variables, *args, train=True,
                                      mutable=list(model_state), **kwargs)
      return base.to_float32(out), {**model_state, **updates}
    out = self.model.apply(variables, *args, train=train, **kwargs)
    return base.to_float32(out), model_state

  # ---------------------------------------------------------------- state
  def init_state(self, rng, example_batch):
    init_rng, z_rng = jax.random.split(rng)
    images = example_batch["image"]
    # The non-partitionable threefry draws from the same distributions but compiles
    # about 5x faster on CPU (a conv VAE's init: 15 s -> 3 s on 2 cores); the state is
    # replicated, so partitioning the random bits would buy nothing.
    with jax.threefry_partitionable(False), param_init.drawing(self.param_init):
      (logits, _), variables = self.model.init_with_output(init_rng, images, z_rng,
                                                           train=False)
    self._check_output_channels(logits, images)
    params = {"model": variables["params"]}
    if self.likelihood == "gaussian" and self.learn_scale:
      params["log_scale"] = jnp.asarray(self.fixed_log_scale, jnp.float32)
    model_state = {k: v for k, v in variables.items() if k != "params"} or None
    return base.TrainState.create(apply_fn=self.model.apply, params=params, tx=self.tx,
                                  model_state=model_state)

  def _check_output_channels(self, logits, images) -> None:
    per_channel = _OUTPUTS_PER_CHANNEL[self.likelihood]
    expected = per_channel * images.shape[-1]
    if logits.shape[-1] != expected:
      hint = (f"; set model.output_params={per_channel}"
              if hasattr(self.model, "output_params") else
              f"; model {type(self.model).__name__} cannot, pick another objective.likelihood")
      raise errors.ConfigError(
          f"objective.likelihood={self.likelihood!r} needs {per_channel} decoder output(s) "
          f"per image channel ({expected} channels for {images.shape[-1]}-channel images), "
          f"but the model gives {logits.shape[-1]}{hint}.")

  def _log_scale(self, params):
    return params.get("log_scale", self.fixed_log_scale)

  # ---------------------------------------------------------------- losses
  def _reconstruction(self, params, logits, images):
    """The per-example reconstruction term (nats, or squared data units for 'mse')."""
    if self.likelihood == "bernoulli":
      return losses.bernoulli_nll(logits, images)
    if self.likelihood == "gaussian":
      return losses.gaussian_nll(logits, images, self._log_scale(params))
    if self.likelihood == "discretized_logistic":
      means, log_scales = jnp.split(logits, 2, axis=-1)
      return losses.discretized_logistic_nll(means, log_scales, images,
                                             self.value_range.low, self.value_range.width)
    return losses.pixel_mean_squared_error(logits, images)

  def nll_of_means(self, state, means: jax.Array, images: jax.Array) -> jax.Array:
    """Per-example reconstruction term (the units of `nll_nats`, or of `mse`) of a decoder
    whose mean is `means` (in the data's range) for `images`: the reference decoders of
    `jaxgen.evaluation.baselines` (a constant mean image, the images themselves).

    Raises:
      ValueError: objective.likelihood='discretized_logistic', whose scale is a decoder
        output with no reference value.
    """
    if self.likelihood == "bernoulli":
      p = jnp.clip(means, 1e-6, 1.0 - 1e-6)  # A certain pixel costs at most 13.8 nats.
      outputs = jnp.log(p) - jnp.log1p(-p)
    elif self.likelihood in ("gaussian", "mse"):
      outputs = means
    else:
      raise ValueError(f"objective.likelihood={self.likelihood!r} has no reference decoder "
                       f"of given means (its scale is a decoder output).")
    return self._reconstruction(state.params, outputs, images)

  def _per_example(self, params, model_state, images, rng, train):
    """(reconstruction term, KL or None, model_state after the call), per example."""
    (logits, aux), model_state = self._apply(params, model_state, images, rng, train=train)
    recon = self._reconstruction(params, logits, images)
    kl = losses.gaussian_kl(aux["mu"], aux["logvar"]) if self.variational else None
    return recon, kl, model_state

  def _num_dims(self, images):
    return math.prod(images.shape[1:])

  def discretization_nats(self, num_dims: int) -> float | None:
    """Nats added to a negative bound before bits/dim, or None for no bits/dim (see
    `base.LatentVariableModel`)."""
    # A Gaussian is a density: put it on the 8-bit scale of discrete likelihoods.
    if self.likelihood == "gaussian":
      return losses.discretization_nats(num_dims, self.value_range.width)
    # A Bernoulli of grey levels scores values it cannot emit: a cross-entropy, not a
    # likelihood of the data, so it gets no bits/dim to be mistaken for one.
    if self.likelihood == "bernoulli" and self.value_range.levels != 2:
      return None
    return 0.0

  def _loss(self, recon, kl):
    return recon if kl is None else recon + self.beta * kl

  def _elbo_metrics(self, recon, kl, images):
    """Per-example metrics with units in their names."""
    if self.likelihood == "mse":
      metrics = {"mse": recon}
      if kl is not None:
        metrics["kl_nats"] = kl
      return metrics
    if kl is None:
      return {"nll_nats": recon}
    num_dims = self._num_dims(images)
    neg_elbo = recon + kl
    metrics = {"elbo_nats": -neg_elbo, "nll_nats": recon, "kl_nats": kl}
    offset = self.discretization_nats(num_dims)
    if offset is not None:
      metrics["bits_per_dim"] = losses.bits_per_dim(neg_elbo + offset, num_dims)
    return metrics

  def metric_names(self):
    if self.likelihood == "mse":
      names = {"mse", "kl_nats"} if self.variational else {"mse"}
    elif not self.variational:
      names = {"nll_nats"}
    else:
      names = {"elbo_nats", "nll_nats", "kl_nats"}
      if self.discretization_nats(1) is not None:
        names.add("bits_per_dim")
    return frozenset(names | {"loss", "grad_norm"})

  def train_step(self, state, batch, rng):
    images = batch["image"]

    def loss_fn(params):
      recon, kl, model_state = self._per_example(params, state.model_state, images, rng,
                                                 train=True)
      return jnp.mean(self._loss(recon, kl)), (recon, kl, model_state)

    (loss, (recon, kl, model_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads).replace(model_state=model_state)
    metrics = {k: jnp.mean(v) for k, v in self._elbo_metrics(recon, kl, images).items()}
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.tree.norm(grads)  # optax.global_norm's current name
    return new_state, metrics

  def eval_step(self, state, batch, rng):
    images = batch["image"]
    recon, kl, _ = self._per_example(state.params, state.model_state, images, rng,
                                     train=False)
    metrics = self._elbo_metrics(recon, kl, images)
    metrics["loss"] = self._loss(recon, kl)
    return metrics

  # ---------------------------------------------------------------- images
  def _mean_image(self, params, logits):
    """Decoder mean mapped to [0, 1] for display."""
    del params
    if self.likelihood == "bernoulli":
      return jax.nn.sigmoid(logits)
    if self.likelihood == "discretized_logistic":
      logits = jnp.split(logits, 2, axis=-1)[0]  # The means.
    return jnp.clip(self.value_range.to_unit(logits), 0.0, 1.0)

  def decode_raw(self, state, z):
    """Decoder outputs for latent codes `z` (B, latent_dim), in the model's units."""
    out, _ = self._apply(state.params, state.model_state, z, train=False,
                         method=self.model.decode)
    return out

  def decode(self, state, z):
    """Decoder means in [0, 1] for latent codes `z` of shape (B, latent_dim)."""
    return self._mean_image(state.params, self.decode_raw(state, z))

  @property
  def latent_dim(self) -> int:
    """Size of the latent code."""
    return self.model.latent_dim

  def encode(self, state, images, rng=None):
    """Posterior (mu, logvar) for `images`; (code, None) for a deterministic model."""
    del rng  # The posterior's parameters are a deterministic function of the images.
    out, _ = self._apply(state.params, state.model_state, images, train=False,
                         method=self.model.encode)
    return out if self.variational else (out, None)

  def latent_code(self, state, images):
    """The deterministic code of `images`: the posterior mean, or the AE's encoding."""
    return self.encode(state, images)[0]

  def sample(self, state, rng, num):
    if self.variational:
      z = jax.random.normal(rng, (num, self.latent_dim))
    else:
      # An autoencoder has no prior: the model says how it draws plausible codes.
      z, _ = self._apply(state.params, state.model_state, rng, num, train=False,
                         method=self.model.sample_latent)
    return self.decode(state, z)

  def reconstruct(self, state, batch, rng):
    del rng  # Reconstruct from the posterior mean: the figure should not be noisy.
    return self.decode(state, self.latent_code(state, batch["image"]))

  def num_params(self, state: Any) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(state.params["model"])))


class VariationalAutoencodingObjective(AutoencodingObjective):
  """A VAE with a normalized decoder likelihood: a `base.LatentVariableModel`."""

  def decoder_nll(self, state, z, images):
    """-log p(images | z) per example in nats, the training loss's reconstruction term."""
    return self._reconstruction(state.params, self.decode_raw(state, z), images)


def build(config: ml_collections.ConfigDict) -> AutoencodingObjective:
  """The `autoencoding` family's objective for `config`.

  A VAE with a normalized likelihood is a `LatentVariableModel` (it has log p(x|z)); an
  autoencoder or an MSE-trained VAE is not, so evaluators can ask
  isinstance(objective, LatentVariableModel).
  """
  if _has_likelihood(config):
    return VariationalAutoencodingObjective(config)
  return AutoencodingObjective(config)
