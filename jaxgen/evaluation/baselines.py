"""Reference points that expose a weak or overfitting VAE.

Under the objective's own likelihood, two decoders that need no latent code bound what a
reconstruction term can be: the *mean image* (the training split's mean for every input:
a model whose code carries nothing does no worse in expectation than the best constant)
and the *perfect reconstruction* (each image's own pixels as the decoder's mean: for a
Bernoulli decoder on grey levels the pixels' binary entropy, 0 on binarized data). A VAE
whose test negative ELBO is not clearly below the mean image's NLL has learnt little
(`reference_nlls`, nats). A model trained on the pixel-mean squared error
(objective.likelihood='mse') has no likelihood: `reference_mses` gives the same two
decoders in its unit, where the mean image's MSE is the test images' pixel variance
about the training mean and a perfect reconstruction scores 0. `overfitting` reads the
run's history for a test loss that rises while the training loss falls.
"""

from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import data as data_lib
from jaxgen.evaluation import likelihood

# A model closer than this to the mean image (nats per image) gets a warning.
MIN_GAP_NATS = 5.0
# An MSE model whose test MSE is less than this fraction below the mean image's gets a
# warning: its reconstructions explain under 10% of the pixel variance about the mean.
MIN_MSE_REDUCTION = 0.10


def mean_image(data_config: Any, split: str) -> np.ndarray:
  """The mean (H, W, C) image of `split`, as the pipeline prepares it (float64 sums)."""
  total, count = 0.0, 0.0
  for batch in data_lib.make_eval_batches(data_config, split=split, per_process=False):
    mask = np.asarray(batch["mask"], np.float64)
    total = total + np.tensordot(mask, np.asarray(batch["image"], np.float64), axes=1)
    count += mask.sum()
  if not count:
    raise ValueError(f"Split {split!r} of dataset {data_config.name!r} is empty.")
  return (total / count).astype(np.float32)


def _is_mse(objective: Any) -> bool:
  """Whether the objective's reconstruction term is an MSE (its declared metrics say)."""
  return "mse" in objective.metric_names()


def reference_nlls(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                   mean: np.ndarray) -> dict[str, float]:
  """Test NLLs of the mean-image and perfect-reconstruction decoders (nats per image).

  Args:
    objective: an autoencoding objective with a likelihood (`nll_of_means`).
    state: its state (a learnt Gaussian scale is used as trained).
    batches: eval batches ("image", "mask") of the split to score.
    mean: the training mean image (see `mean_image`).

  Returns:
    {"mean_image_nll_nats", "mean_image_nll_stderr", "perfect_reconstruction_nll_nats"}.

  Raises:
    ValueError: an MSE objective (no nats: use `reference_mses`).
  """
  if _is_mse(objective):
    raise ValueError("objective.likelihood='mse' has no NLL in nats; use "
                     "baselines.reference_mses for its reference decoders.")
  return _reference_summary(objective, state, batches, mean, (
      "mean_image_nll_nats", "mean_image_nll_stderr", "perfect_reconstruction_nll_nats"))


def reference_mses(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                   mean: np.ndarray) -> dict[str, float]:
  """Test MSEs of the mean-image and perfect-reconstruction decoders of an MSE objective.

  Args:
    objective: an autoencoding objective with objective.likelihood='mse'.
    state: its state.
    batches: eval batches ("image", "mask") of the split to score.
    mean: the training mean image (see `mean_image`).

  Returns:
    {"mean_image_mse", "mean_image_mse_stderr", "perfect_reconstruction_mse"}: means over
    the split of the per-image pixel-mean squared error (squared data units).

  Raises:
    ValueError: an objective whose reconstruction term is not an MSE (`reference_nlls`).
  """
  if not _is_mse(objective):
    raise ValueError("The objective's reconstruction term is an NLL in nats, not an MSE; "
                     "use baselines.reference_nlls.")
  return _reference_summary(objective, state, batches, mean, (
      "mean_image_mse", "mean_image_mse_stderr", "perfect_reconstruction_mse"))


def _reference_summary(objective: Any, state: Any,
                       batches: Iterable[Mapping[str, np.ndarray]], mean: np.ndarray,
                       names: tuple[str, str, str]) -> dict[str, float]:
  """{names[0]: the mean image's mean term, names[1]: its standard error, names[2]: the
  perfect reconstruction's mean term} over the split."""
  by_mean, by_self = _reference_terms(objective, state, batches, mean)
  mean_term, stderr = likelihood.mean_and_stderr(by_mean)
  return dict(zip(names, (mean_term, stderr, float(by_self.mean()))))


def _reference_terms(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                     mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-example reconstruction terms (float64) of the mean image and of each image itself."""
  score = jax.jit(lambda s, images: (
      objective.nll_of_means(s, jnp.broadcast_to(mean, images.shape), images),
      objective.nll_of_means(s, images, images)))
  mean_nlls, perfect_nlls = [], []
  for batch in batches:
    keep = np.asarray(batch["mask"]) > 0
    by_mean, by_self = jax.device_get(score(state, jnp.asarray(batch["image"])))
    mean_nlls.append(np.asarray(by_mean, np.float64)[keep])
    perfect_nlls.append(np.asarray(by_self, np.float64)[keep])
  return np.concatenate(mean_nlls), np.concatenate(perfect_nlls)


def overfitting(records: Sequence[Mapping[str, Any]], metric: str = "loss",
                tolerance: float = 0.005) -> str | None:
  """A sentence when the eval `metric` ended above its best by more than `tolerance`
  (relative) while the training `metric` fell after that best step; else None."""
  evals = [(r["step"], r[f"eval/{metric}"]) for r in records if f"eval/{metric}" in r]
  trains = [(r["step"], r[f"train/{metric}"]) for r in records if f"train/{metric}" in r]
  if len(evals) < 2 or not trains:
    return None
  best_step, best = min(evals, key=lambda e: e[1])
  last_step, last = evals[-1]
  train_at = lambda step: min(trains, key=lambda t: abs(t[0] - step))[1]
  if last > best + tolerance * abs(best) and train_at(last_step) < train_at(best_step):
    return (f"test {metric} rose from {_number(best)} (step {best_step}) to {_number(last)} "
            f"(step {last_step}) while the training {metric} fell from "
            f"{_number(train_at(best_step))} to {_number(train_at(last_step))}: the model "
            f"overfits; stop earlier or regularise.")
  return None


def _number(value: float) -> str:
  """Two decimals, or four significant digits below 1 (an MSE of 0.01234 stays readable)."""
  return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"
