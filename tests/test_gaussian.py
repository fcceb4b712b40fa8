"""The Gaussian baseline (`likelihood` family): streamed MLE, exact NLL, fits, samples."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn import covariance as sk_covariance

from jaxgen import checkpoints
from jaxgen import objectives
from jaxgen import train
from jaxgen import workdir as workdir_lib
from jaxgen.objectives import likelihood
from helpers import load_config

SMALL_SHAPE = (2, 3, 1)  # D = 6: small enough for scipy and many Monte Carlo samples.


def _pixels(num, shape, seed=0):
  """8-bit images k / 255 with correlated pixels (a random mixing of a few factors)."""
  rng = np.random.default_rng(seed)
  d = math.prod(shape)
  latent = rng.normal(size=(num, 3)) @ rng.normal(size=(3, d)) + 0.3 * rng.normal(size=(num, d))
  k = np.clip(np.round(127.5 + 40 * latent), 0, 255)
  return (k / 255.0).reshape(num, *shape).astype(np.float32)


def _config(preprocessing="symmetric", arg="smoke", **objective_fields):
  config = load_config("mnist_gaussian", arg)
  config.model.image_shape = SMALL_SHAPE
  config.data.preprocessing = preprocessing
  config.objective.top_k = 2
  for name, value in objective_fields.items():
    config.objective[name] = value
  return config


def _preprocess(unit_images, preprocessing):
  return unit_images * 2.0 - 1.0 if preprocessing == "symmetric" else unit_images


def _fitted(config, unit_images, batch_size=64):
  """An objective and its closed-form fit, streamed in padded, masked batches."""
  objective = objectives.get_objective(config)
  images = _preprocess(unit_images, config.data.preprocessing)
  state = objective.init_state(jax.random.PRNGKey(0), {"image": jnp.asarray(images[:2])})
  batches = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    pad = batch_size - len(chunk)
    batches.append({"image": np.concatenate([chunk, np.full((pad,) + chunk.shape[1:], 7.0,
                                                            np.float32)]),
                    "mask": np.r_[np.ones(len(chunk)), np.zeros(pad)].astype(np.float32)})
  return objective, objective.initial_fit(state, iter(batches))


def test_streamed_moments_equal_numpy_mean_and_cov():
  x = np.random.default_rng(1).uniform(size=(1000, 20)) ** 3
  moments = likelihood.StreamingMoments(20)
  for start in range(0, 1000, 96):  # The last batch is padded with garbage rows, masked out.
    chunk = x[start:start + 96]
    pad = 96 - len(chunk)
    moments.update(np.concatenate([chunk, np.full((pad, 20), 1e6)]), np.r_[np.ones(len(chunk)),
                                                                          np.zeros(pad)])
  assert moments.count == 1000
  np.testing.assert_allclose(moments.mean, np.mean(x, axis=0), atol=1e-6, rtol=0)
  np.testing.assert_allclose(moments.covariance, np.cov(x, rowvar=False, bias=True),
                             atol=1e-6, rtol=0)


def test_ledoit_wolf_from_streamed_moments_equals_scikit_learn():
  x = _pixels(300, (4, 5, 1)).reshape(300, -1).astype(np.float64)
  moments = likelihood.StreamingMoments(20)
  for start in range(0, 300, 64):
    moments.update(x[start:start + 64])
  expected_cov, expected_shrinkage = sk_covariance.ledoit_wolf(x)
  assert 0.0 < expected_shrinkage < 1.0
  assert moments.ledoit_wolf_shrinkage() == pytest.approx(expected_shrinkage, rel=1e-9)
  np.testing.assert_allclose(
      sk_covariance.shrunk_covariance(moments.covariance, moments.ledoit_wolf_shrinkage()),
      expected_cov, atol=1e-12)


@pytest.mark.parametrize("preprocessing", ["unit", "symmetric"])
def test_dequantized_nll_equals_scipy_logpdf(preprocessing):
  config = _config(preprocessing, covariance="eps")
  unit = _pixels(500, SMALL_SHAPE)
  objective, state = _fitted(config, unit)
  low, data_range = (-1.0, 2.0) if preprocessing == "symmetric" else (0.0, 1.0)
  test_unit = _pixels(5, SMALL_SHAPE, seed=2)
  u = np.random.default_rng(3).uniform(size=test_unit.shape).astype(np.float32)
  got = objective.dequantized_nll(state, jnp.asarray(_preprocess(test_unit, preprocessing)),
                                  jnp.asarray(u))
  # Independently: 8-bit level k, dequantized to (k + u) / 256 on the data's scale.
  k = np.round(test_unit * 255).reshape(5, -1)
  y = low + data_range * (k + u.reshape(5, -1)) / 256
  mean, cov = jax.device_get(objective.mean_and_covariance(state))
  d = k.shape[1]
  expected = (-stats.multivariate_normal(mean.ravel(), cov).logpdf(y)
              + d * math.log(256 / data_range))
  np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_eval_nll_is_the_exact_expectation_over_dequantization_noise():
  config = _config(covariance="none")
  objective, state = _fitted(config, _pixels(500, SMALL_SHAPE))
  images = jnp.asarray(_preprocess(_pixels(3, SMALL_SHAPE, seed=4), "symmetric"))
  exact = objective.eval_step(state, {"image": images}, None)["dequantized_nll_nats"]
  noise = jax.random.uniform(jax.random.PRNGKey(5), (4000,) + images.shape)
  draws = jax.jit(jax.vmap(lambda u: objective.dequantized_nll(state, images, u)))(noise)
  stderr = np.std(draws, axis=0) / math.sqrt(len(draws))
  np.testing.assert_array_less(np.abs(np.mean(draws, axis=0) - exact), 4 * stderr + 1e-4)


@pytest.mark.parametrize("covariance", ["none", "eps"])
def test_closed_form_fit_is_the_optimum_of_the_training_loss(covariance):
  """The gradient of the mean training loss vanishes at the closed-form fit."""
  config = _config(covariance=covariance, eps=0.01)
  unit = _pixels(400, SMALL_SHAPE)
  objective, fitted = _fitted(config, unit)
  images = jnp.asarray(_preprocess(unit, "symmetric"))
  fresh = objective.init_state(jax.random.PRNGKey(0), {"image": images[:2]})

  step = jax.jit(objective.train_step)

  def grad_norm(state):
    _, metrics = step(state, {"image": images}, jax.random.PRNGKey(0))
    return float(metrics["grad_norm"])

  assert grad_norm(fitted) < 1e-4 * grad_norm(fresh)


def test_fit_does_not_depend_on_the_preprocessing_scale():
  unit = _pixels(300, SMALL_SHAPE)
  test = _pixels(20, SMALL_SHAPE, seed=6)
  nll = {}
  for preprocessing in ("unit", "symmetric"):
    objective, state = _fitted(_config(preprocessing, covariance="eps"), unit)
    metrics = objective.eval_step(state, {"image": jnp.asarray(_preprocess(test, preprocessing))},
                                  None)
    nll[preprocessing] = np.asarray(metrics["dequantized_nll_nats"])
  np.testing.assert_allclose(nll["unit"], nll["symmetric"], rtol=1e-5)


def test_sampling_variants_have_the_documented_covariances():
  config = _config(covariance="eps", top_k=2, sample_temperature=0.5)
  objective, state = _fitted(config, _pixels(300, SMALL_SHAPE))
  _, sigma = jax.device_get(objective.mean_and_covariance(state))
  eigvals, eigvecs = np.linalg.eigh(sigma)
  top = eigvecs[:, -2:] @ np.diag(eigvals[-2:]) @ eigvecs[:, -2:].T
  expected = {"full": sigma, "temperature": 0.25 * sigma, "diagonal": np.diag(np.diag(sigma)),
              "top_k": top}
  for variant, cov in expected.items():
    factor = np.asarray(objective.variant_factor(state, variant))
    np.testing.assert_allclose(factor @ factor.T, cov, atol=1e-5, err_msg=variant)
  samples = objective.sample_variant(state, jax.random.PRNGKey(0), 7, "top_k")
  assert samples.shape == (7, *SMALL_SHAPE)
  assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0


def test_free_parameter_count():
  objective = objectives.get_objective(load_config("mnist_gaussian", "smoke"))
  assert objective.num_params(None) == 784 + 784 * 785 // 2


def test_unknown_covariance_variant_fails_clearly():
  objective, state = _fitted(_config(), _pixels(50, SMALL_SHAPE))
  with pytest.raises(ValueError, match=r"Unknown covariance variant 'spherical'.*"
                                       r"objective\.sample_variants.*diagonal, full"):
    objective.sample_variant(state, jax.random.PRNGKey(0), 4, "spherical")


@pytest.mark.parametrize("field,value,message", [
    ("objective__covariance", "graphical_lasso",
     r"Unknown covariance regularisation 'graphical_lasso'.*objective\.covariance.*ledoit_wolf"),
    ("objective__fit", "em", r"Unknown fit 'em'.*objective\.fit.*closed_form, gradient"),
    ("objective__sample_variants", ("full", "isotropic"),
     r"Unknown covariance variant 'isotropic'.*objective\.sample_variants"),
    ("objective__eps", 0.0, r"objective\.eps must be > 0"),
    ("objective__top_k", 0, r"objective\.top_k must be in \[1, 784\]"),
    ("data__preprocessing", "binarize_static", r"data\.preprocessing='binarize_static'"),
    ("model__name", "conv_vae", r"needs model\.name='gaussian'"),
])
def test_bad_config_fails_clearly(field, value, message):
  overrides = {field: value}
  if field == "objective__eps":
    overrides["objective__covariance"] = "eps"
  config = load_config("mnist_gaussian", "smoke", **overrides)
  with pytest.raises(ValueError, match=message):
    objectives.get_objective(config)


def test_gradient_fit_cannot_use_ledoit_wolf():
  with pytest.raises(ValueError, match=r"fit='gradient' cannot use .*'ledoit_wolf'"):
    objectives.get_objective(load_config("mnist_gaussian", "fit=gradient,cov=ledoit_wolf,smoke"))


def test_closed_form_run_on_mnist_5k_then_rerun_reuses_the_fit(data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "gaussian")
  config = load_config("mnist_gaussian", "smoke", data__data_dir=data_dir)
  result = train.train_and_evaluate(config, workdir)
  assert int(result.state.step) == 0
  assert float(result.state.model_state["num_fit_examples"]) == 4500
  assert 0.0 < float(result.state.model_state["shrinkage"]) < 1.0
  bits = result.eval_metrics["bits_per_dim"]
  assert 0.0 < bits < 8.0, bits  # Better than uniform over the 256 levels.
  assert result.eval_metrics["dequantized_nll_nats"] == pytest.approx(bits * 784 * math.log(2))
  for stem in ("mean", "covariance", "samples_full", "samples_temperature",
               "samples_diagonal", "samples_top_k"):
    assert os.path.getsize(os.path.join(workdir, "figures", f"{stem}.png")) > 1000, stem
  # One evaluation is a table row in report.md, not a one-point learning curve.
  assert not os.path.exists(os.path.join(workdir, "figures", "learning_curves.png"))
  assert checkpoints.Checkpointer(os.path.join(workdir, "checkpoints")).latest_step() == 0
  records = workdir_lib.read_metrics(workdir)
  assert records[-1]["eval/bits_per_dim"] == pytest.approx(bits)
  with open(os.path.join(workdir, "report.md")) as f:
    assert f"({bits:.4f} bits/dim)**" in f.read()  # The headline line names the NLL.

  def refit(*args):
    raise AssertionError("a finished run must be restored, not fitted again")

  monkeypatch.setattr(likelihood.LikelihoodObjective, "initial_fit", refit)
  again = train.train_and_evaluate(config, workdir)
  assert again.eval_metrics["bits_per_dim"] == pytest.approx(bits, rel=1e-6)


def test_gradient_fit_through_the_loop_agrees_with_the_closed_form(data_dir, tmp_path):
  """Full-batch Adam on the Cholesky factor reaches the closed-form fit (8x8 digits)."""
  results = {}
  for fit in ("closed_form", "gradient"):
    config = load_config("mnist_gaussian", f"fit={fit},cov=eps,eps=0.01,smoke",
                         data__data_dir=data_dir)
    config.data.name = "sklearn_digits"
    config.model.image_shape = (8, 8, 1)
    config.data.batch_size = 1617  # The whole training split: deterministic gradients.
    config.train.num_eval_batches = None
    config.optimizer.learning_rate = 0.03
    if fit == "gradient":
      config.train.num_steps = 200
      config.train.eval_every = config.train.checkpoint_every = config.train.log_every = 200
    results[fit] = train.train_and_evaluate(config, str(tmp_path / fit))
  closed, grad = results["closed_form"], results["gradient"]
  assert int(grad.state.step) == 200
  assert grad.eval_metrics["dequantized_nll_nats"] == pytest.approx(
      closed.eval_metrics["dequantized_nll_nats"], abs=0.05)
  mean_c, cov_c = jax.device_get(closed.objective.mean_and_covariance(closed.state))
  mean_g, cov_g = jax.device_get(grad.objective.mean_and_covariance(grad.state))
  np.testing.assert_allclose(mean_g, mean_c, atol=5e-3)  # on [-1, 1]
  assert np.linalg.norm(cov_g - cov_c) < 0.01 * np.linalg.norm(cov_c)
