"""The `classification` family: an image classifier trained by the same loop.

It exists to *measure* generative models: a CNN trained on real labelled images labels
generated ones (does an AC-GAN digit show its class? which digit does each InfoGAN code
value draw?) and gives a feature space for sample statistics.

loss = cross-entropy -log softmax(logits)[label] (nats), averaged over the batch.
Eval reports per-example `ce_nats` and `accuracy`.

A classifier generates nothing, yet the loop draws `sample()` at every eval: here it
returns class visualisations (Simonyan et al., 2014): images grown from uniform grey by
gradient ascent on log p(class | x), classes cycling 0, 1, ..., which show what the
network responds to.
"""

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import errors
from jaxgen import losses
from jaxgen import models
from jaxgen import value_range
from jaxgen.models import param_init
from jaxgen.objectives import base

# Gradient-ascent schedule of the class visualisations.
_VIS_STEPS = 60
_VIS_STEP_SIZE = 0.02


class ClassificationObjective(base.Objective):
  """Softmax classifier on `batch["label"]`.

  Config: `config.model` names the classifier ('cnn_classifier', with image_shape and
  num_classes); `config.optimizer` its optimizer. The input range follows
  `data.preprocessing`; `to_input_range` maps [0, 1] images (e.g. GAN samples) into it.
  """

  guarded_metrics = ("loss",)
  headline_metric = "accuracy"

  def __init__(self, config: ml_collections.ConfigDict):
    model_fields = models.module_fields(config.model)
    for field in ("image_shape", "features"):
      if field in model_fields:
        model_fields[field] = tuple(model_fields[field])
    self.model = models.get_model(config.model.name, **model_fields)
    if not hasattr(self.model, "num_classes"):
      raise errors.ConfigError(
          f"objective.name='classification' needs a classifier model "
          f"(model.name='cnn_classifier'), got model.name={config.model.name!r}.")
    self.num_classes = self.model.num_classes
    self.param_init = param_init.scheme_of(config.model)
    self.tx = base.make_optimizer(config.optimizer)
    self.value_range = value_range.of_data(config.data)
    self.sample_description = "class visualisations: image i maximises log p(class i | x)"

  def to_input_range(self, images_unit: jax.Array) -> jax.Array:
    """Maps images in [0, 1] to the range the classifier was trained on."""
    return self.value_range.from_unit(images_unit)

  def init_state(self, rng, example_batch):
    if "label" not in example_batch:
      raise errors.ConfigError(
          "objective.name='classification' trains on labels, but the dataset has none: use "
          "a labelled dataset (e.g. data.name='mnist_5k'), or for CelebA set "
          "data.label_attribute (e.g. 'Male').")
    with param_init.drawing(self.param_init):
      variables = self.model.init(rng, example_batch["image"])
    return base.TrainState.create(apply_fn=self.model.apply,
                                  params={"model": variables["params"]}, tx=self.tx)

  def logits(self, state, images: jax.Array) -> jax.Array:
    """(B, num_classes) logits for images in the training input range."""
    return self.model.apply({"params": state.params["model"]}, images)

  def embed(self, state, images: jax.Array) -> jax.Array:
    """(B, hidden) penultimate features for images in the training input range."""
    return self.model.apply({"params": state.params["model"]}, images,
                            method=self.model.embed)

  def _per_example(self, params, batch):
    logits = self.model.apply({"params": params["model"]}, batch["image"])
    ce = losses.categorical_cross_entropy(logits, batch["label"])
    accuracy = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
    return ce, accuracy

  def metric_names(self):
    return frozenset({"loss", "ce_nats", "accuracy"})

  def train_step(self, state, batch, rng):
    del rng  # Deterministic network.

    def loss_fn(params):
      ce, accuracy = self._per_example(params, batch)
      return jnp.mean(ce), accuracy

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"loss": loss, "ce_nats": loss, "accuracy": jnp.mean(accuracy)}
    return state.apply_gradients(grads=grads), metrics

  def eval_step(self, state, batch, rng):
    del rng
    ce, accuracy = self._per_example(state.params, batch)
    return {"loss": ce, "ce_nats": ce, "accuracy": accuracy}

  def sample(self, state, rng, num):
    """Class visualisations in [0, 1]: image i maximises log p(class i mod K | x)."""
    labels = jnp.arange(num) % self.num_classes
    shape = (num, *self.model.image_shape)
    start = 0.5 + 0.01 * jax.random.normal(rng, shape)

    def log_prob(x_unit):
      logits = self.logits(state, self.to_input_range(x_unit))
      return -jnp.sum(losses.categorical_cross_entropy(logits, labels))

    def ascend(_, x):
      g = jax.grad(log_prob)(x)
      # Normalised per image, so every class moves at the same pace.
      scale = jnp.sqrt(jnp.mean(g**2, axis=(1, 2, 3), keepdims=True)) + 1e-12
      return jnp.clip(x + _VIS_STEP_SIZE * g / scale, 0.0, 1.0)

    return jax.lax.fori_loop(0, _VIS_STEPS, ascend, start)
