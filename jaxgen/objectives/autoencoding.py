"""The `autoencoding` family: VAEs and beta-VAEs behind the Objective interface.

loss = reconstruction NLL + beta * KL(q(z|x) || p(z)), per example, averaged over the
batch. The ELBO itself (beta = 1) is always reported, whatever beta trains with.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import losses
from jaxgen import models
from jaxgen import registry
from jaxgen.objectives import base

LIKELIHOODS = ("bernoulli", "gaussian")


class AutoencodingObjective(base.Objective):
  """VAE objective with a Bernoulli or Gaussian decoder likelihood.

  Config fields (`config.objective`): likelihood ('bernoulli' | 'gaussian'), beta (KL
  weight, 1 = the ELBO), gaussian_log_scale (fixed log std of the Gaussian likelihood,
  in data units), learn_scale (learn one global log std instead).
  """

  guarded_metrics = ("loss", "grad_norm")
  headline_metric = "elbo_nats"

  def __init__(self, config: ml_collections.ConfigDict):
    model_fields = {k: v for k, v in config.model.items() if k != "name"}
    if "image_shape" in model_fields:
      model_fields["image_shape"] = tuple(model_fields["image_shape"])
    self.model = models.get_model(config.model.name, **model_fields)
    obj = config.objective
    self.likelihood = registry.lookup(
        "likelihood", obj.get("likelihood", "bernoulli"),
        {k: k for k in LIKELIHOODS}, "objective.likelihood")
    self.beta = float(obj.get("beta", 1.0))
    self.learn_scale = bool(obj.get("learn_scale", False))
    self.fixed_log_scale = float(obj.get("gaussian_log_scale", math.log(0.1)))
    self.tx = base.make_optimizer(config.optimizer)
    preprocessing = config.data.get("preprocessing", "unit")
    # [-1, 1] data is shown and scored on an interval twice as wide as [0, 1] data.
    self.data_low, self.data_range = (-1.0, 2.0) if preprocessing == "symmetric" else (0.0, 1.0)
    if self.likelihood == "bernoulli" and preprocessing == "symmetric":
      raise ValueError(
          "objective.likelihood='bernoulli' needs targets in [0, 1], but "
          "data.preprocessing='symmetric' gives [-1, 1]; use data.preprocessing='unit' "
          "or 'binarize_*', or objective.likelihood='gaussian'.")

  # ---------------------------------------------------------------- state
  def init_state(self, rng, example_batch):
    init_rng, z_rng = jax.random.split(rng)
    variables = self.model.init(init_rng, example_batch["image"], z_rng, train=False)
    params = {"model": variables["params"]}
    if self.likelihood == "gaussian" and self.learn_scale:
      params["log_scale"] = jnp.asarray(self.fixed_log_scale, jnp.float32)
    return base.TrainState.create(apply_fn=self.model.apply, params=params, tx=self.tx)

  def _log_scale(self, params):
    return params.get("log_scale", self.fixed_log_scale)

  # ---------------------------------------------------------------- losses
  def _per_example(self, params, images, rng):
    logits, aux = self.model.apply({"params": params["model"]}, images, rng, train=True)
    if self.likelihood == "bernoulli":
      nll = losses.bernoulli_nll(logits, images)
    else:
      nll = losses.gaussian_nll(logits, images, self._log_scale(params))
    kl = losses.gaussian_kl(aux["mu"], aux["logvar"])
    return nll, kl

  def _num_dims(self, images):
    return math.prod(images.shape[1:])

  def _elbo_metrics(self, nll, kl, images):
    num_dims = self._num_dims(images)
    neg_elbo = nll + kl
    # A Gaussian is a density: put it on the 8-bit scale of discrete likelihoods.
    offset = (losses.discretization_nats(num_dims, self.data_range)
              if self.likelihood == "gaussian" else 0.0)
    return {
        "elbo_nats": -neg_elbo,
        "nll_nats": nll,
        "kl_nats": kl,
        "bits_per_dim": losses.bits_per_dim(neg_elbo + offset, num_dims),
    }

  def train_step(self, state, batch, rng):
    images = batch["image"]

    def loss_fn(params):
      nll, kl = self._per_example(params, images, rng)
      loss = jnp.mean(nll + self.beta * kl)
      return loss, (nll, kl)

    (loss, (nll, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads)
    metrics = {k: jnp.mean(v) for k, v in self._elbo_metrics(nll, kl, images).items()}
    metrics["loss"] = loss
    metrics["grad_norm"] = jax.numpy.sqrt(
        sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads)))
    return new_state, metrics

  def eval_step(self, state, batch, rng):
    images = batch["image"]
    nll, kl = self._per_example(state.params, images, rng)
    metrics = self._elbo_metrics(nll, kl, images)
    metrics["loss"] = nll + self.beta * kl
    return metrics

  # ---------------------------------------------------------------- images
  def _mean_image(self, params, logits):
    """Decoder mean mapped to [0, 1] for display."""
    if self.likelihood == "bernoulli":
      return jax.nn.sigmoid(logits)
    return jnp.clip((logits - self.data_low) / self.data_range, 0.0, 1.0)

  def decode(self, state, z):
    """Decoder means in [0, 1] for latent codes `z` of shape (B, latent_dim)."""
    logits = self.model.apply({"params": state.params["model"]}, z, method=self.model.decode)
    return self._mean_image(state.params, logits)

  def encode(self, state, images):
    """Posterior (mu, logvar) for `images`."""
    return self.model.apply({"params": state.params["model"]}, images,
                            method=self.model.encode)

  def sample(self, state, rng, num):
    z = jax.random.normal(rng, (num, self.model.latent_dim))
    return self.decode(state, z)

  def reconstruct(self, state, batch, rng):
    del rng  # Reconstruct from the posterior mean: the figure should not be noisy.
    mu, _ = self.encode(state, batch["image"])
    return self.decode(state, mu)

  def num_params(self, state):
    return int(sum(x.size for x in jax.tree_util.tree_leaves(state.params["model"])))
