"""The interface every model family implements; the training loop only calls this.

A family (autoencoding, likelihood, adversarial) turns a config into a state pytree
and pure functions over it. `jaxgen.train` jits and shards those functions, checkpoints
the state, and never looks inside either.
"""

import abc
import dataclasses
import typing
from typing import Any, Iterable, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxgen import value_range as value_range_lib

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
  """Flax TrainState plus non-trained variables (e.g. BatchNorm statistics).

  `params` is a dict with the model's parameters under "model" (families may add
  other trained leaves beside it, e.g. a learned likelihood scale).
  """
  model_state: Any = None

  @classmethod
  def create(cls, *, apply_fn, params, tx, **kwargs):
    state = super().create(apply_fn=apply_fn, params=params, tx=tx, **kwargs)
    # A strongly typed int32 step: Python's 0 is weakly typed, and the step returned by
    # the first update is not, which would make the jitted step trace twice.
    return state.replace(step=jnp.zeros((), jnp.int32))


def to_float32(tree: Any) -> Any:
  """Casts the floating-point leaves of `tree` to float32 (others are left as they are).

  Families apply it to model outputs before their losses: with `model.dtype='bfloat16'`
  the networks compute in bfloat16, but losses, KLs and log-likelihoods (sums over
  thousands of pixels) and the images handed to the loop stay float32.
  """
  return jax.tree_util.tree_map(
      lambda x: x.astype(jnp.float32)
      if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree)


def make_optimizer(opt_config) -> optax.GradientTransformation:
  """Builds the optax optimizer named by `config.optimizer`.

  Fields: name ('adam' | 'adamw' | 'sgd'), learning_rate, b1, b2, eps, weight_decay,
  grad_clip_norm (None = no clipping), lr_boundaries and lr_boundary_scale (the rate is
  multiplied by the scale at each boundary step); defaults in config_lib.SECTION_DEFAULTS.
  """
  from jaxgen import config_lib
  from jaxgen import registry
  opt = config_lib.with_defaults(opt_config, "optimizer")
  lr, b1, b2, eps = opt.learning_rate, opt.b1, opt.b2, opt.eps
  if opt.lr_boundaries:
    # Step-wise decay (e.g. the IWAE paper's 10^(-1/7) after 3^i epochs).
    lr = optax.piecewise_constant_schedule(
        lr, {int(step): opt.lr_boundary_scale for step in opt.lr_boundaries})
  makers = {
      "adam": lambda: optax.adam(lr, b1=b1, b2=b2, eps=eps),
      "adamw": lambda: optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=opt.weight_decay),
      "sgd": lambda: optax.sgd(lr, momentum=opt.momentum),
  }
  tx = registry.lookup("optimizer", opt.name, makers, "optimizer.name")()
  return _clip_gradients_first(tx, opt.grad_clip_norm)


def _clip_gradients_first(tx: optax.GradientTransformation,
                          max_norm: float | None) -> optax.GradientTransformation:
  """`tx` applied to gradients clipped to global norm `max_norm` (None: unclipped).

  Unlike `optax.chain(optax.clip_by_global_norm(...), tx)`, the optimizer state is
  `tx`'s state whether or not clipping is on, so a run may switch clipping (and its
  learning rate) when it resumes, e.g. to recover from a divergence.
  """
  if max_norm is None:
    return tx
  clip = optax.clip_by_global_norm(max_norm)

  def update(updates, state, params=None):
    clipped, _ = clip.update(updates, clip.init(updates))
    return tx.update(clipped, state, params)

  return optax.GradientTransformation(tx.init, update)


class Objective(abc.ABC):
  """A model family: how to initialise, train, evaluate and sample.

  All methods taking `state` are pure and traceable: the loop jits them with the
  batch sharded over devices and the state replicated. Images are NHWC float32.
  """

  # Metrics whose non-finite value stops training (checked by the loop).
  guarded_metrics: tuple[str, ...] = ("loss",)
  # The eval metric the report headlines, and whether lower is better.
  headline_metric: str = "loss"
  # The interval the data lies in (`value_range.of_data(config.data)`), set by every family:
  # figures and evaluators map images to [0, 1] with `value_range.to_unit`.
  value_range: value_range_lib.ValueRange
  # What `sample` draws, in words: the title of samples.png.
  sample_description: str = "samples"

  @abc.abstractmethod
  def init_state(self, rng: jax.Array, example_batch: Batch) -> Any:
    """Returns the initial state pytree (must have an integer `step` field)."""

  @abc.abstractmethod
  def train_step(self, state: Any, batch: Batch, rng: jax.Array) -> tuple[Any, Metrics]:
    """One update. Returns the new state and scalar metrics (averaged over the batch)."""

  @abc.abstractmethod
  def eval_step(self, state: Any, batch: Batch, rng: jax.Array) -> Metrics:
    """Per-example metrics, each of shape (B,); the loop averages them over the split."""

  @abc.abstractmethod
  def sample(self, state: Any, rng: jax.Array, num: int) -> jax.Array:
    """`num` generated images in [0, 1], NHWC."""

  @abc.abstractmethod
  def metric_names(self) -> frozenset[str]:
    """Names of the metrics `train_step` and `eval_step` return, without "train/".

    Known from the config alone, so `train.curve_metrics` is checked before any data
    is read or any step is traced.
    """

  def initial_fit(self, state: Any, batches: Iterable[Batch]) -> Any:
    """Optional closed-form fit before gradient steps (e.g. a Gaussian's MLE).

    Called once on a fresh (not restored) state with one pass over the training split:
    `batches` yields numpy dicts with "image" and a float "mask" (0 = padding). Families
    without such a fit return `state` unchanged (the default, which reads no data).
    """
    del batches
    return state

  needs_initial_fit: bool = False  # True makes the loop call `initial_fit`.

  def extra_figures(self, state: Any, rng: jax.Array,
                    images: np.ndarray) -> dict[str, tuple[np.ndarray, int, str]]:
    """Family-specific figures drawn at every eval (e.g. attribute pairs, code rows).

    Args:
      state: the state.
      rng: a fixed key (the same at every eval, so figures compare across steps).
      images: fixed eval images (preprocessed, NHWC) spread over the split.

    Returns:
      {file stem: (images in [0, 1] NHWC, images per row, title)}; saved as
      figures/<stem>.png and logged to TensorBoard.
    """
    del state, rng, images
    return {}

  def num_params(self, state: Any) -> int:
    """Number of trained parameters."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(state.params)))


# ------------------------------------------------------------------ capabilities
# What evaluators and studies may ask of an objective beyond the training interface.
# They check `isinstance(objective, Protocol)`, never `hasattr` or private attributes,
# so a new family gets offline evaluation by implementing these methods.


@typing.runtime_checkable
class Sampler(Protocol):
  """Draws images from the model (sample quality: FID, KID, precision/recall)."""

  def sample(self, state: Any, rng: jax.Array, num: int) -> jax.Array:
    """`num` generated images in [0, 1], NHWC."""


@typing.runtime_checkable
class Reconstructor(Protocol):
  """Maps images to reconstructions (reconstruction-error anomaly scores, figures)."""

  def reconstruct(self, state: Any, batch: Batch, rng: jax.Array) -> jax.Array:
    """Reconstructions of `batch["image"]` in [0, 1], NHWC."""


@typing.runtime_checkable
class Autoencoder(Protocol):
  """Has a latent code (t-SNE, active units, traversals, latent edits).

  A deterministic autoencoder is one; so is every VAE, whatever its likelihood.
  """

  latent_dim: int

  def encode(self, state: Any, images: jax.Array,
             rng: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
    """(code or posterior mean (B, latent_dim), posterior log-variance or None)."""

  def decode(self, state: Any, z: jax.Array) -> jax.Array:
    """Decoder means in [0, 1], NHWC, for codes `z` of shape (B, latent_dim)."""


@typing.runtime_checkable
class LatentVariableModel(Autoencoder, Protocol):
  """p(z) = N(0, I), q(z|x) = N(mean, diag(exp(logvar))) and a normalized p(x|z).

  What the ELBO, IWAE-k and likelihood anomaly scores need.
  """

  likelihood: str  # The name of p(x|z), recorded with the bounds.

  def decoder_nll(self, state: Any, z: jax.Array, images: jax.Array) -> jax.Array:
    """-log p(images | z) per example, (B,) nats."""

  def discretization_nats(self, num_dims: int) -> float | None:
    """Nats added to -log p(x) before bits/dim: 0 for a discrete likelihood; for a
    density, the term that puts it on the 8-bit scale (`losses.discretization_nats`);
    None when p(x|z) is not a likelihood of the data's values (a Bernoulli of grey
    levels, a cross-entropy), which then reports no bits/dim."""


@dataclasses.dataclass
class Member:
  """One model of a `ModelCollection`: its tag, swept value, objective and state."""
  tag: str
  value: float
  objective: Any
  state: Any


@typing.runtime_checkable
class ModelCollection(Protocol):
  """Several models trained as one run (e.g. a vmapped sweep); evaluated one by one."""

  def members(self, state: Any) -> list[Member]:
    """Every model of the run, in order."""
