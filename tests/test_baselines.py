"""Reference decoders (mean image, perfect reconstruction) and the overfitting check."""

import jax
import numpy as np
import pytest
from scipy import special

from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen import train
from jaxgen.evaluation import baselines
from helpers import load_config


def _vae(data_dir):
  config = load_config("mnist_vae", "smoke", data__data_dir=data_dir)
  objective = objectives.get_objective(config)
  state = train.init_state(objective, jax.random.PRNGKey(0),
                           {"image": np.zeros((16, 28, 28, 1), np.float32)}, train.make_mesh())
  return config, objective, state


def test_mean_image_is_the_splits_mean(data_dir):
  config, _, _ = _vae(data_dir)
  images = np.concatenate([b["image"][b["mask"] > 0] for b in
                           data_lib.make_eval_batches(config.data, split="test", batch_size=64)])
  np.testing.assert_allclose(baselines.mean_image(config.data, "test"), images.mean(axis=0),
                             atol=1e-6)


def test_reference_nlls_are_the_bernoulli_cross_entropies(data_dir):
  """Against an independent numpy computation: BCE of the mean image, binary entropy."""
  config, objective, state = _vae(data_dir)
  mean = baselines.mean_image(config.data, "train")
  batches = list(data_lib.make_eval_batches(config.data, split="test", batch_size=64))
  images = np.concatenate([b["image"][b["mask"] > 0] for b in batches]).astype(np.float64)
  p = np.clip(mean.astype(np.float64), 1e-6, 1 - 1e-6)
  by_mean = -(images * np.log(p) + (1 - images) * np.log1p(-p)).sum(axis=(1, 2, 3))
  entropy = special.entr(images) + special.entr(1 - images)  # -x log x - (1-x) log(1-x)
  out = baselines.reference_nlls(objective, state, batches, mean)
  assert out["mean_image_nll_nats"] == pytest.approx(by_mean.mean(), rel=1e-4)
  assert out["mean_image_nll_stderr"] == pytest.approx(
      by_mean.std(ddof=1) / np.sqrt(len(by_mean)), rel=1e-3)
  assert out["perfect_reconstruction_nll_nats"] == pytest.approx(
      entropy.sum(axis=(1, 2, 3)).mean(), rel=1e-3, abs=0.05)
  assert out["perfect_reconstruction_nll_nats"] < out["mean_image_nll_nats"]


def _mse_vae(data_dir):
  """mnist_vae:smoke trained on the pixel-mean MSE of [-1, 1] digits (as the CelebA VAE)."""
  config = load_config("mnist_vae", "smoke", data__data_dir=data_dir,
                       data__preprocessing="symmetric", objective__likelihood="mse",
                       train__curve_metrics=("loss", "mse"))
  objective = objectives.get_objective(config)
  state = train.init_state(objective, jax.random.PRNGKey(0),
                           {"image": np.zeros((16, 28, 28, 1), np.float32)}, train.make_mesh())
  return config, objective, state


def test_reference_mses_are_the_pixel_variance_about_the_mean_and_zero(data_dir):
  """Against numpy: the mean image's MSE is the mean over images of the mean squared
  deviation from the training mean; each image reproduced scores exactly 0."""
  config, objective, state = _mse_vae(data_dir)
  mean = baselines.mean_image(config.data, "train")
  batches = list(data_lib.make_eval_batches(config.data, split="test", batch_size=64))
  images = np.concatenate([b["image"][b["mask"] > 0] for b in batches]).astype(np.float64)
  assert images.min() < -0.9  # [-1, 1] digits.
  by_mean = ((images - mean.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
  out = baselines.reference_mses(objective, state, batches, mean)
  assert set(out) == {"mean_image_mse", "mean_image_mse_stderr", "perfect_reconstruction_mse"}
  assert out["mean_image_mse"] == pytest.approx(by_mean.mean(), rel=1e-5)
  assert out["mean_image_mse_stderr"] == pytest.approx(
      by_mean.std(ddof=1) / np.sqrt(len(by_mean)), rel=1e-4)
  assert out["perfect_reconstruction_mse"] == 0.0


def test_reference_nlls_and_mses_refuse_the_other_unit(data_dir):
  config, objective, state = _mse_vae(data_dir)
  mean = baselines.mean_image(config.data, "train")
  with pytest.raises(ValueError, match="no NLL in nats; use baselines.reference_mses"):
    baselines.reference_nlls(objective, state, [], mean)
  _, bernoulli, bernoulli_state = _vae(data_dir)
  with pytest.raises(ValueError, match="not an MSE; use baselines.reference_nlls"):
    baselines.reference_mses(bernoulli, bernoulli_state, [], mean)


def test_binary_images_reconstruct_perfectly_at_zero_nats(data_dir):
  _, objective, state = _vae(data_dir)
  binary = (np.random.default_rng(0).uniform(size=(4, 28, 28, 1)) > 0.5).astype(np.float32)
  nll = np.asarray(objective.nll_of_means(state, binary, binary))
  assert np.all(nll < 784 * 2e-6)


def test_overfitting_is_reported_only_when_test_rises_as_train_falls():
  def history(evals, trains):
    return [{"step": s, "eval/loss": e, "train/loss": t}
            for s, e, t in zip((100, 200, 300), evals, trains)]
  sentence = baselines.overfitting(history((350.0, 351.1, 353.0), (349.0, 345.0, 340.0)))
  assert sentence and "rose from 350.00 (step 100) to 353.00 (step 300)" in sentence
  assert baselines.overfitting(history((352.0, 351.0, 350.0), (349.0, 345.0, 340.0))) is None
  # Noise within the tolerance is not overfitting.
  assert baselines.overfitting(history((350.0, 350.5, 350.4), (349.0, 345.0, 340.0))) is None
  assert baselines.overfitting(history((350.0, 352.0, 353.0), (340.0, 345.0, 349.0))) is None
  # MSE-sized losses keep their digits.
  sentence = baselines.overfitting(history((0.0210, 0.0215, 0.0221), (0.03, 0.02, 0.01)))
  assert "rose from 0.021 (step 100) to 0.0221 (step 300)" in sentence
