"""The literature's binarized-MNIST protocol and the IWAE paper's VAE as a config."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import evaluate
from jaxgen import objectives
from jaxgen import train
from jaxgen.objectives import base
from helpers import load_config


def test_binarized_protocol_trains_on_fresh_binarizations():
  assert load_config("mnist_vae", "protocol=binarized").data.preprocessing == "binarize_dynamic"
  assert load_config("mnist_vae").data.preprocessing == "unit"
  with pytest.raises(ValueError, match="Unknown protocol 'halves'"):
    load_config("mnist_vae", "protocol=halves")


def test_likelihood_variants_and_their_errors():
  logistic = load_config("mnist_vae", "likelihood=logistic")
  assert (logistic.objective.likelihood, logistic.model.output_params) == (
      "discretized_logistic", 2)
  assert load_config("frey_vae").objective.likelihood == "gaussian"
  assert load_config("frey_vae", "likelihood=bernoulli").objective.likelihood == "bernoulli"
  for name in ("mnist_vae", "frey_vae"):
    with pytest.raises(ValueError, match=rf"Unknown likelihood 'poisson' in configs/{name}.py"):
      load_config(name, "likelihood=poisson")
  with pytest.raises(ValueError, match="likelihood=logistic models 8-bit grey levels"):
    load_config("mnist_vae", "likelihood=logistic,protocol=binarized")


def test_output_params_other_than_one_or_two_fail_naming_the_field():
  config = load_config("mnist_vae", "smoke,likelihood=logistic")
  config.model.output_params = 3
  with pytest.raises(ValueError, match=r"`model.output_params` must be 1 .* or 2 .*got 3"):
    objectives.get_objective(config)


def test_burda2016_config_is_the_published_setup():
  config = load_config("mnist_vae_burda2016", "full")
  assert config.data.name == "mnist" and config.data.preprocessing == "binarize_dynamic"
  assert (tuple(config.model.hidden_sizes), config.model.latent_dim,
          config.model.activation) == ((200, 200), 50, "tanh")
  assert config.data.batch_size == 20 and config.optimizer.eps == 1e-4
  steps_per_epoch = 60_000 // 20
  assert config.train.num_steps == 3280 * steps_per_epoch  # sum of 3^i, i = 0..7 epochs.
  # The rate drops by 10^(-1/7) after 1, 1+3, 1+3+9, ... epochs (7 drops).
  assert config.optimizer.lr_boundaries == tuple(
      steps_per_epoch * sum(3**j for j in range(i + 1)) for i in range(7))
  quick = load_config("mnist_vae_burda2016")
  assert quick.data.name == "mnist_5k" and quick.train.num_steps == 40 * 225


def test_piecewise_learning_rate_follows_the_boundaries():
  config = load_config("mnist_vae_burda2016", "smoke")
  config.optimizer.lr_boundaries = (2, 4)
  tx = base.make_optimizer(config.optimizer)
  params = {"w": jnp.zeros(())}
  state = tx.init(params)
  rates = []
  for _ in range(6):
    # Adam's first update of a constant gradient moves the parameter by about the rate.
    updates, state = tx.update({"w": jnp.ones(())}, state, params)
    rates.append(-float(updates["w"]))
  scale = 10 ** (-1 / 7)
  np.testing.assert_allclose(rates, [1e-3] * 2 + [1e-3 * scale] * 2 + [1e-3 * scale**2] * 2,
                             rtol=1e-3)


def test_mlp_vae_activation_is_tanh_when_asked():
  config = load_config("mnist_vae_burda2016", "smoke")
  objective = objectives.get_objective(config)
  assert objective.model.activation == "tanh"
  bad = load_config("mnist_vae_burda2016", "smoke", model__activation="gelu")
  with pytest.raises(ValueError, match="model.activation"):
    objectives.get_objective(bad)


def test_evaluate_protocol_checks_the_data_and_names_its_sources(data_dir, tmp_path):
  config = load_config("mnist_vae_burda2016", "smoke", data__data_dir=data_dir)
  workdir = str(tmp_path / "burda")
  train.train_and_evaluate(config, workdir)
  results = evaluate.evaluate_workdir(workdir, metrics=["likelihood"], iwae_k=(3,),
                                      max_examples=32, protocol="binarized")
  bound = results["likelihood"]["bounds"]["iwae_3_nats"]
  assert bound["num_examples"] == 32 and bound["negative_nats"] > 0
  lines = evaluate.protocol_lines("binarized", results["dataset"])
  assert any("86.76" in line and "Burda et al." in line for line in lines)
  assert any("mnist_5k" in line for line in lines)

  grey = load_config("mnist_vae", "smoke", data__data_dir=data_dir)
  with pytest.raises(ValueError, match="--protocol=binarized needs a run trained on binarized"):
    evaluate.check_protocol(grey, "binarized")
