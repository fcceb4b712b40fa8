"""Reference points that expose a weak or overfitting VAE.

Under the objective's own likelihood, two decoders that need no latent code bound what a
reconstruction term can be: the *mean image* (the training split's mean for every input:
a model whose code carries nothing does no worse in expectation than the best constant)
and the *perfect reconstruction* (each image's own pixels as the decoder's mean: for a
Bernoulli decoder on grey levels the pixels' binary entropy, 0 on binarized data). A VAE
whose test negative ELBO is not clearly below the mean image's NLL has learnt little;
`overfitting` reads the run's history for a test loss that rises while the training loss
falls.
"""

from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import data as data_lib

# A model closer than this to the mean image (nats per image) gets a warning.
MIN_GAP_NATS = 5.0


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


def reference_nlls(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                   mean: np.ndarray) -> dict[str, float]:
  """Test NLLs of the mean-image and perfect-reconstruction decoders (nats per image).

  Args:
    objective: an autoencoding objective (`nll_of_means`).
    state: its state (a learnt Gaussian scale is used as trained).
    batches: eval batches ("image", "mask") of the split to score.
    mean: the training mean image (see `mean_image`).

  Returns:
    {"mean_image_nll_nats", "mean_image_nll_stderr", "perfect_reconstruction_nll_nats"}.
  """
  score = jax.jit(lambda s, images: (
      objective.nll_of_means(s, jnp.broadcast_to(mean, images.shape), images),
      objective.nll_of_means(s, images, images)))
  mean_nlls, perfect_nlls = [], []
  for batch in batches:
    keep = np.asarray(batch["mask"]) > 0
    by_mean, by_self = jax.device_get(score(state, jnp.asarray(batch["image"])))
    mean_nlls.append(np.asarray(by_mean, np.float64)[keep])
    perfect_nlls.append(np.asarray(by_self, np.float64)[keep])
  mean_nlls, perfect_nlls = np.concatenate(mean_nlls), np.concatenate(perfect_nlls)
  return {"mean_image_nll_nats": float(mean_nlls.mean()),
          "mean_image_nll_stderr": float(mean_nlls.std(ddof=1) / np.sqrt(len(mean_nlls))),
          "perfect_reconstruction_nll_nats": float(perfect_nlls.mean())}


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
    return (f"test {metric} rose from {best:.2f} (step {best_step}) to {last:.2f} (step "
            f"{last_step}) while the training {metric} fell from {train_at(best_step):.2f} "
            f"to {train_at(last_step):.2f}: the model overfits; stop earlier or regularise.")
  return None
