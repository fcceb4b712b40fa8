"""A new family gets offline evaluation by implementing the capability protocols.

`LinearGaussian` below is a test-only family: z ~ N(0, I_d), x | z ~ N(a P z + b,
sigma^2 I), where P puts z on d pixels of the middle row, left of the centre (where
the test split's first digits, zeros, have ink; constant codes would break t-SNE).
The columns of a P are orthogonal, so the exact posterior is diagonal and it is the
encoder: every importance weight p(x, z) / q(z|x) equals p(x), so IWAE-k is log p(x) =
sum_i log N(x_i; b_i, a^2 + sigma^2 on those pixels, else sigma^2) exactly, for any
parameters and k; the one-sample ELBO (analytic KL) is log p(x) on average.
`jaxgen.evaluate` evaluates it knowing nothing but the protocols.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jaxgen import data as data_lib
from jaxgen import evaluate
from jaxgen import losses
from jaxgen import objectives
from jaxgen import train
from jaxgen.evaluation import runs
from jaxgen.objectives import base
from helpers import load_config


class LinearGaussian(base.Objective):
  """A linear-Gaussian latent variable model with three kinds of parameters."""

  likelihood = "gaussian"

  def __init__(self, config):
    self.latent_dim = int(config.model.latent_dim)
    self.image_shape = tuple(config.model.image_shape)
    self.num_dims = math.prod(self.image_shape)
    first = self.image_shape[0] // 2 * self.image_shape[1] + 6  # Row 14, column 6 of 28.
    self.pixels = slice(first, first + self.latent_dim)

  def init_state(self, rng, example_batch):
    del example_batch
    params = {"scale": jnp.asarray(0.7), "log_sigma": jnp.asarray(-1.0),
              "bias": 0.1 * jax.random.normal(rng, (self.num_dims,))}
    return base.TrainState.create(apply_fn=None, params=params, tx=optax.sgd(1e-4))

  def _marginal_nll(self, params, images):
    """-log p(x), exact: the marginal is a diagonal normal."""
    x = images.reshape(len(images), -1)
    var = jnp.full((self.num_dims,), jnp.exp(2 * params["log_sigma"]))
    var = var.at[self.pixels].add(params["scale"]**2)
    return losses.gaussian_nll(params["bias"][None], x, 0.5 * jnp.log(var)[None])

  def train_step(self, state, batch, rng):
    del rng
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(self._marginal_nll(p, batch["image"])))(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss}

  def eval_step(self, state, batch, rng):
    del rng
    return {"loss": self._marginal_nll(state.params, batch["image"])}

  def metric_names(self):
    return frozenset({"loss"})

  # ---------------------------------------------------------------- capabilities
  def encode(self, state, images, rng=None):
    del rng
    a, sigma2 = state.params["scale"], jnp.exp(2 * state.params["log_sigma"])
    x = images.reshape(len(images), -1)[:, self.pixels]
    mean = a * (x - state.params["bias"][self.pixels]) / (a**2 + sigma2)
    return mean, jnp.broadcast_to(jnp.log(sigma2 / (a**2 + sigma2)), mean.shape)

  def _mean(self, state, z):
    placed = jnp.zeros((len(z), self.num_dims)).at[:, self.pixels].set(state.params["scale"] * z)
    return placed + state.params["bias"]

  def decode(self, state, z):
    return jnp.clip(self._mean(state, z), 0, 1).reshape((-1,) + self.image_shape)

  def decoder_nll(self, state, z, images):
    return losses.gaussian_nll(self._mean(state, z), images.reshape(len(images), -1),
                               state.params["log_sigma"])

  def discretization_nats(self, num_dims):
    return losses.discretization_nats(num_dims, 1.0)

  def sample(self, state, rng, num):
    return self.decode(state, jax.random.normal(rng, (num, self.latent_dim)))

  def reconstruct(self, state, batch, rng):
    return self.decode(state, self.encode(state, batch["image"], rng)[0])


@pytest.fixture
def tiny_run(data_dir, tmp_path, monkeypatch):
  monkeypatch.setitem(objectives.OBJECTIVES, "linear_gaussian", LinearGaussian)
  config = load_config("mnist_vae", "smoke,model=mlp")
  config.data.data_dir = data_dir
  config.objective.name = "linear_gaussian"
  config.model.latent_dim = 3
  config.train.curve_metrics = ("loss",)
  workdir = str(tmp_path / "linear_gaussian")
  train.train_and_evaluate(config, workdir)
  return workdir, config


def test_a_new_family_declares_its_capabilities():
  family = LinearGaussian(load_config("mnist_vae", "smoke,model=mlp"))
  for protocol in (base.Sampler, base.Reconstructor, base.Autoencoder,
                   base.LatentVariableModel):
    assert isinstance(family, protocol), protocol
  assert not isinstance(family, base.ModelCollection)
  assert evaluate.default_metrics(family) == ("likelihood", "samples", "latents")


def test_evaluate_gives_the_closed_form_likelihood_of_a_new_family(tiny_run):
  workdir, config = tiny_run
  results = evaluate.evaluate_workdir(workdir, metrics=["likelihood", "latents"],
                                      iwae_k=(1, 50), max_examples=40)
  bounds = results["likelihood"]["bounds"]
  # The same 40 test images, scored in closed form with the restored parameters.
  params = jax.device_get(runs.restore_run(workdir).state.params)
  batches = data_lib.make_eval_batches(config.data, batch_size=40)
  x = next(batches)["image"][:40].reshape(40, -1).astype(np.float64)
  std = np.full(x.shape[1], math.exp(params["log_sigma"]))
  pixels = slice(14 * 28 + 6, 14 * 28 + 9)  # LinearGaussian.pixels for 3 latents.
  std[pixels] = np.sqrt(params["scale"]**2 + std[pixels]**2)
  log_px = stats.norm(params["bias"], std).logpdf(x).sum(axis=1).mean()
  for name in ("iwae_1_nats", "iwae_50_nats"):
    assert bounds[name]["nats"] == pytest.approx(log_px, abs=0.02), name
  # One z per image: E_q log p(x|z) is estimated, with a few tenths of a nat of noise.
  assert bounds["elbo_nats"]["nats"] == pytest.approx(log_px, abs=1.0)
  assert results["likelihood"]["likelihood"] == "gaussian"
  assert results["latents"]["latent_dim"] == 3 and results["latents"]["num_examples"] == 40
