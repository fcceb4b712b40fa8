"""Sample-quality metrics on features of a jaxgen-trained classifier (no download).

FID (Heusel et al., 2017), unbiased KID (Binkowski et al., 2018), k-NN precision and
recall (Kynkaanniemi et al., 2019) and a classifier score (the Inception score's
formula, Salimans et al., 2016) computed from the penultimate features and class
probabilities of a feature network trained inside jaxgen on the dataset's labels
(`jaxgen.evaluation.feature_net`). Numbers are comparable only between runs that use
the same feature network, sample counts and preprocessing: every result records them.
The FID comes with a bootstrap interval over its generated and real rows
(`fid_bootstrap`), so a difference between two runs can be read against its noise.

The metric functions take numpy feature arrays and do their sums in float64.
Reference (real-data) features are cached per feature network, dataset, split and
preprocessing, so a split is passed through the network once.
"""

import math
from typing import Any, Callable

import jax
import numpy as np
import threadpoolctl

from jaxgen.evaluation import progress


# ------------------------------------------------------------------ FID
def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (ddof=1) of (N, D) features, in float64."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"Need (N >= 2, D) features, got shape {features.shape}.")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Squared Frechet (2-Wasserstein) distance between two Gaussians.

  ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2). The trace of the
  matrix square root comes from the eigenvalues of the symmetric PSD matrix
  S1^1/2 S2 S1^1/2, which is exact and stable even for singular covariances (no
  complex parts from `scipy.linalg.sqrtm`).
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f"Statistics of different dimensions: {mu1.shape} vs {mu2.shape}.")
  root1 = _psd_sqrt(sigma1)
  middle = root1 @ sigma2 @ root1
  eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
  trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
  value = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
  return float(max(value, 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FID between two (N, D) feature sets."""
  return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


# Bootstrap resamples of an FID: each costs two (N, D) covariances and three D x D
# eigendecompositions, O(N D^2 + D^3). With the feature nets' D = 128, 100 resamples took
# about 0.5 s for 1,000 vs 500 rows, 3 s for 10,000 vs 10,000 and 6 s for 20,000 vs
# 20,000 (2 busy CPU cores).
FID_RESAMPLES = 100


def fid_bootstrap(generated: np.ndarray, real: np.ndarray, num_resamples: int = FID_RESAMPLES,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
  """FID of generated against real features, with a bootstrap interval and the counts.

  Each resample draws the generated and the real rows with replacement (as many as
  each set has) and recomputes the FID. Repeated rows make a resample's FID larger
  than the full sets' (FID is biased upwards at finite counts, and a resample holds
  only ~63% distinct rows): the raw percentiles of the resamples can lie wholly above
  the FID. So they are moved down by that shift (the resamples' mean less the FID), and
  the interval covers the expected FID at these sample counts, what fresh draws of as
  many samples average to. The shift itself estimates how far the FID at these counts
  lies above the FID of infinitely many samples. When the FID is mostly that bias
  (near-identical distributions) the interval is wider than the spread of fresh draws.

  Args:
    generated, real: (N, D) features.
    num_resamples: bootstrap resamples (0 = the FID and the counts only).
    confidence: coverage of the percentile interval.
    seed: resampling seed.

  Returns:
    {"fid", "num_generated", "num_real", "fid_resamples", "fid_confidence"} and, with
    resamples, "fid_interval" ([low, high]), "fid_bootstrap_stderr" (the resamples'
    standard deviation) and "fid_bootstrap_bias" (their mean less "fid").

  Raises:
    ValueError: a negative `num_resamples` or a `confidence` outside (0, 1).
  """
  if num_resamples < 0 or not 0 < confidence < 1:
    raise ValueError(f"FID bootstrap needs resamples >= 0 (--fid_resamples) and a "
                     f"confidence in (0, 1), got {num_resamples} and {confidence}.")
  generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
  # One BLAS thread: D x D matrices gain nothing from more, and on a shared CPU waiting
  # threads made each 128 x 128 eigh 100x slower (330 ms instead of 3 ms).
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    result = {"fid": fid(generated, real), "num_generated": len(generated),
              "num_real": len(real), "fid_resamples": int(num_resamples),
              "fid_confidence": confidence}
    if not num_resamples:
      return result
    rng = np.random.default_rng(seed)
    resampled = np.array([
        fid(generated[rng.integers(0, len(generated), len(generated))],
            real[rng.integers(0, len(real), len(real))])
        for _ in progress.track(range(num_resamples), num_resamples, "FID bootstrap",
                               units="resamples")])
  bias = resampled.mean() - result["fid"]
  tail = 100 * (1 - confidence) / 2
  low, high = np.percentile(resampled, [tail, 100 - tail]) - bias
  result.update({"fid_interval": [float(max(low, 0.0)), float(high)],
                 "fid_bootstrap_stderr": float(resampled.std(ddof=1)),
                 "fid_bootstrap_bias": float(bias)})
  return result


def describe_fid(result: dict[str, Any], decimals: int = 1) -> str:
  """One line: "FID 12.3 (95% bootstrap interval 11.8-12.9; 1,000 generated vs 500 real)"."""
  parts = []
  if "fid_interval" in result:
    low, high = result["fid_interval"]
    parts.append(f"{100 * result['fid_confidence']:g}% bootstrap interval "
                 f"{low:.{decimals}f}-{high:.{decimals}f}")
  parts.append(f"{result['num_generated']:,} generated vs {result['num_real']:,} real")
  return f"FID {result['fid']:.{decimals}f} ({'; '.join(parts)})"


# ------------------------------------------------------------------ KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3,
                      coef0: float = 1.0) -> np.ndarray:
  """k(x, y) = (x . y / D + coef0) ** degree, the KID kernel."""
  return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray,
                  kernel: Callable[[np.ndarray, np.ndarray], np.ndarray] = polynomial_kernel
                  ) -> float:
  """Unbiased estimate of MMD^2 between the distributions of (m, D) x and (n, D) y.

  Diagonal terms k(x_i, x_i) are left out of the within-set means, so the estimate
  averages to 0 when x and y come from one distribution (and can be negative).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError(f"Unbiased MMD needs >= 2 examples per set, got {m} and {n}.")
  k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
  within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
  within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
  return float(within_x + within_y - 2 * k_xy.mean())


def effective_kid_subset_size(num_a: int, num_b: int, subset_size: int = 1000) -> int:
  """`subset_size`, capped at half the smaller set so that subsets differ."""
  return max(2, min(subset_size, min(num_a, num_b) // 2))


def kid(features_a: np.ndarray, features_b: np.ndarray, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance: unbiased MMD^2, mean and std over random subsets.

  Args:
    features_a, features_b: (N, D) features.
    num_subsets: subsets drawn (without replacement within a subset).
    subset_size: examples per subset; capped at half the smaller set's size (whole-set
      subsets would all be equal and their std meaningless).
    seed: subset sampling seed.

  Returns:
    (mean, std) over the subsets.
  """
  rng = np.random.default_rng(seed)
  size = effective_kid_subset_size(len(features_a), len(features_b), subset_size)
  values = []
  for _ in range(num_subsets):
    a = features_a[rng.choice(len(features_a), size, replace=False)]
    b = features_b[rng.choice(len(features_b), size, replace=False)]
    values.append(mmd2_unbiased(a, b))
  return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------------ precision / recall
def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(len(a), len(b)) squared Euclidean distances."""
  return np.maximum(np.sum(a**2, axis=1)[:, None] - 2 * a @ b.T
                    + np.sum(b**2, axis=1)[None], 0.0)


# Rows per block of a distance matrix: keeps memory at block x N, not N x N.
_BLOCK = 1024


def _knn_radii(features: np.ndarray, k: int) -> np.ndarray:
  """Squared distance from each point to its k-th nearest other point."""
  radii = np.empty(len(features), np.float64)
  for start in range(0, len(features), _BLOCK):
    distances = _squared_distances(features[start:start + _BLOCK], features)
    rows = np.arange(len(distances))
    distances[rows, start + rows] = np.inf  # Not its own neighbour.
    radii[start:start + _BLOCK] = np.partition(distances, k - 1, axis=1)[:, k - 1]
  return radii


def _coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
  """Fraction of `queries` inside at least one k-NN ball of `manifold`."""
  inside = [np.any(_squared_distances(queries[s:s + _BLOCK], manifold) <= radii[None], axis=1)
            for s in range(0, len(queries), _BLOCK)]
  return float(np.mean(np.concatenate(inside)))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al., 2019).

  Precision: the fraction of generated samples inside the real manifold (the union of
  balls around each real point reaching its k-th nearest real neighbour); recall: the
  fraction of real samples inside the generated manifold.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  if min(len(real), len(fake)) <= k:
    raise ValueError(f"precision/recall with k={k} needs more than {k} examples per set, "
                     f"got {len(real)} real and {len(fake)} generated.")
  precision = _coverage(real, _knn_radii(real, k), fake)
  recall = _coverage(fake, _knn_radii(fake, k), real)
  return precision, recall


# ------------------------------------------------------------------ classifier score
def classifier_score(probs: np.ndarray, num_splits: int = 10,
                     seed: int = 0) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))) (the Inception score's formula), mean and std over splits.

  It lies between 1 (every sample gets the same class distribution) and the number of
  classes (confident, evenly spread predictions). The rows are shuffled before
  splitting: a split of a class-sorted set (such as a sorted test split) would hold one
  class and score about 1.
  """
  probs = np.asarray(probs, np.float64)
  probs = probs / probs.sum(axis=1, keepdims=True)
  probs = probs[np.random.default_rng(seed).permutation(len(probs))]
  scores = []
  for part in np.array_split(probs, max(1, min(num_splits, len(probs)))):
    marginal = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    scores.append(math.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------ everything at once
def compare_features(real: dict[str, np.ndarray], fake: dict[str, np.ndarray], *,
                     kid_subsets: int = 100, kid_subset_size: int = 1000, knn_k: int = 3,
                     fid_resamples: int = FID_RESAMPLES, seed: int = 0) -> dict[str, Any]:
  """FID, KID, precision, recall and classifier score of `fake` against `real`.

  Args:
    real: {"features": (N, D), "probs": (N, classes)} of real images.
    fake: the same for generated images.
    kid_subsets, kid_subset_size: see `kid`.
    knn_k: neighbourhood size of precision/recall.
    fid_resamples: bootstrap resamples of the FID (see `fid_bootstrap`).
    seed: KID subset and FID resampling seed.

  Returns:
    The FID, its interval and sample counts of `fid_bootstrap`, and "kid", "kid_std",
    "kid_subsets", "kid_subset_size", "precision", "recall", "classifier_score",
    "classifier_score_std", "real_classifier_score".
  """
  kid_mean, kid_std = kid(real["features"], fake["features"], kid_subsets,
                          kid_subset_size, seed)
  precision, recall = precision_recall(real["features"], fake["features"], knn_k)
  score, score_std = classifier_score(fake["probs"])
  real_score, _ = classifier_score(real["probs"])
  return {
      **fid_bootstrap(fake["features"], real["features"], fid_resamples, seed=seed),
      "kid": kid_mean, "kid_std": kid_std, "kid_subsets": kid_subsets,
      "kid_subset_size": effective_kid_subset_size(len(real["features"]),
                                                   len(fake["features"]), kid_subset_size),
      "precision": precision, "recall": recall,
      "classifier_score": score, "classifier_score_std": score_std,
      "real_classifier_score": real_score,
  }


def sample_images(objective: Any, state: Any, rng: Any, num: int,
                  batch_size: int = 250) -> np.ndarray:
  """`num` images in [0, 1] from a `base.Sampler`, `batch_size` at a time (one compile)."""
  sample = jax.jit(objective.sample, static_argnums=2)
  draws = range(-(-num // batch_size))
  images = [np.asarray(jax.device_get(sample(state, jax.random.fold_in(rng, i), batch_size)))
            for i in progress.track(draws, len(draws), f"drawing {num:,} samples")]
  return np.concatenate(images)[:num]


def evaluate_samples(objective: Any, state: Any, data_config: Any, split: str, rng: Any,
                     feature_net: Any, num_samples: int | None = None,
                     kid_subsets: int = 100, kid_subset_size: int = 1000, knn_k: int = 3,
                     fid_resamples: int = FID_RESAMPLES, seed: int = 0) -> dict[str, Any]:
  """Sample-quality metrics of a model's samples against a real split.

  Args:
    objective, state: a `base.Sampler` and its state.
    data_config: the run's `data` config (where the data lives).
    split: the real split to compare with.
    rng: sampling key.
    feature_net: a `feature_net.FeatureNet` for the run's dataset.
    num_samples: generated samples (None = as many as the split has examples).
    kid_subsets, kid_subset_size, knn_k, fid_resamples, seed: see `compare_features`.

  Returns:
    The metrics of `compare_features` (with "num_real" and "num_generated") plus the
    provenance of every number: "feature_net" (id), "feature_net_test_accuracy",
    "real_split", "preprocessing" (the network's input preprocessing).
  """
  real = feature_net.reference_features(data_config, split)
  num = int(num_samples or real["num_examples"])
  generated = feature_net.features(sample_images(objective, state, rng, num),
                                   description="features of the samples")
  metrics = compare_features(real, generated, kid_subsets=kid_subsets,
                             kid_subset_size=kid_subset_size, knn_k=knn_k,
                             fid_resamples=fid_resamples, seed=seed)
  return {
      **metrics,
      "feature_net": feature_net.id,
      "feature_net_test_accuracy": feature_net.manifest.get("test_accuracy"),
      "real_split": split,
      "preprocessing": real["preprocessing"],
      "kid_subsets": kid_subsets,
      "kid_subset_size": effective_kid_subset_size(real["num_examples"], num, kid_subset_size),
      "knn_k": knn_k,
  }


def reference_fids(feature_net: Any, data_config: Any, split: str = "test",
                   other_split: str = "train", seed: int = 0) -> dict[str, Any]:
  """The FID scale of a feature network: real vs real, and real vs uniform noise.

  FID(split, other_split) (as many examples of each) is the floor a perfect generator
  reaches with that many samples; FID(split, noise) is what noise scores.

  Returns:
    {"fid_real_vs_real", "fid_real_vs_noise", "num_examples", "splits", "feature_net"}.
  """
  real = feature_net.reference_features(data_config, split)
  num = real["num_examples"]
  other = feature_net.reference_features(data_config, other_split, max_examples=num)
  noise = np.random.default_rng(seed).uniform(size=(num,) + feature_net.image_shape)
  noise_features = feature_net.features(noise.astype(np.float32))
  return {
      "fid_real_vs_real": fid(real["features"], other["features"]),
      "fid_real_vs_noise": fid(real["features"], noise_features["features"]),
      "num_examples": num, "splits": [split, other_split], "feature_net": feature_net.id,
  }
