"""Anomaly detection with generative models: scores, ROC/PR AUC with bootstrap intervals.

A model trained on normal data scores each test image; higher means more anomalous:

  reconstruction_error   sum over pixels of (x - reconstruction)^2 on the [0, 1] scale
                         (a `base.Reconstructor`, e.g. autoencoders and VAEs)
  negative_elbo          -ELBO(x) in nats (a `base.LatentVariableModel`: VAEs)
  negative_iwae          -IWAE_k(x) in nats, a tighter bound on -log p(x) (VAEs)

Protocols:
  * one-class MNIST: train on one digit, test that digit (normal) against all the
    others (anomalies) on the test split, for each of the 10 digits; per-digit AUROC
    and the mean (`one_class_table`).
  * image folder: a model trained on a folder of normal images scores a test folder
    whose labels file lists `id,label` (label 1 = anomaly, 0 = normal) per file name
    (`score_image_folder`); `write_scores_csv` exports `id,score`.

ROC AUC and PR AUC (average precision, anomalies as the positive class) come from
scikit-learn; 95% intervals from a stratified bootstrap (normals and anomalies are
resampled separately, so every resample holds both classes).
"""

import csv
import os
from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics

from jaxgen import value_range
from jaxgen.evaluation import examples
from jaxgen.evaluation import likelihood as likelihood_lib
from jaxgen.evaluation import progress
from jaxgen.objectives import base

SCORES = ("reconstruction_error", "negative_elbo", "negative_iwae")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


# ------------------------------------------------------------------ ROC / PR
def roc_pr_auc(is_anomaly: np.ndarray, scores: np.ndarray, num_bootstrap: int = 1000,
               confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
  """ROC AUC and PR AUC (average precision) with stratified bootstrap intervals.

  Args:
    is_anomaly: (N,) 1 for anomalies (the positive class), 0 for normal examples.
    scores: (N,) anomaly scores, higher = more anomalous.
    num_bootstrap: bootstrap resamples (0 = no intervals).
    confidence: interval coverage (percentile bootstrap).
    seed: resampling seed.

  Returns:
    {"auroc", "auroc_ci": [low, high], "auprc", "auprc_ci", "auprc_chance" (the
    anomaly fraction, PR AUC of a random score), "num_normal", "num_anomalous",
    "num_bootstrap", "confidence"}.

  Raises:
    ValueError: one class is missing, lengths differ or a score is not finite.
  """
  labels = np.asarray(is_anomaly).astype(int).ravel()
  scores = np.asarray(scores, np.float64).ravel()
  if labels.shape != scores.shape:
    raise ValueError(f"{labels.size} labels but {scores.size} scores.")
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"{int(np.sum(~np.isfinite(scores)))} anomaly scores are not finite.")
  positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
  if not len(positives) or not len(negatives):
    raise ValueError(f"ROC AUC needs normal and anomalous examples, got "
                     f"{len(negatives)} normal and {len(positives)} anomalous.")
  result = {
      "auroc": float(sk_metrics.roc_auc_score(labels, scores)),
      "auprc": float(sk_metrics.average_precision_score(labels, scores)),
      "auprc_chance": float(len(positives) / len(labels)),
      "num_normal": int(len(negatives)), "num_anomalous": int(len(positives)),
      "num_bootstrap": int(num_bootstrap), "confidence": confidence,
  }
  if num_bootstrap:
    rng = np.random.default_rng(seed)
    aurocs, auprcs = np.empty(num_bootstrap), np.empty(num_bootstrap)
    for b in range(num_bootstrap):
      idx = np.concatenate([rng.choice(positives, len(positives)),
                            rng.choice(negatives, len(negatives))])
      aurocs[b] = sk_metrics.roc_auc_score(labels[idx], scores[idx])
      auprcs[b] = sk_metrics.average_precision_score(labels[idx], scores[idx])
    tail = 100 * (1 - confidence) / 2
    result["auroc_ci"] = [float(v) for v in np.percentile(aurocs, [tail, 100 - tail])]
    result["auprc_ci"] = [float(v) for v in np.percentile(auprcs, [tail, 100 - tail])]
  return result


# ------------------------------------------------------------------ scores
def available_scores(objective: Any) -> tuple[str, ...]:
  """The scores `objective` supports: by its capabilities (`objectives.base`)."""
  scores = ("reconstruction_error",) if isinstance(objective, base.Reconstructor) else ()
  if isinstance(objective, base.LatentVariableModel):
    scores += ("negative_elbo", "negative_iwae")
  return scores


def anomaly_scores(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                   rng: jax.Array,
                   methods: Sequence[str] | None = None, iwae_k: int = 100,
                   max_decoder_batch: int = 4096,
                   num_batches: int | None = None) -> dict[str, np.ndarray]:
  """Anomaly scores of every unpadded example of `batches`, in one pass.

  Args:
    objective: a `base.Reconstructor` (and `base.LatentVariableModel` for ELBO/IWAE).
    state: its state.
    batches: eval batches ("image", "mask", optional "label" and "id").
    rng: key; batch i uses fold_in(rng, i).
    methods: scores to compute (default: all the objective supports).
    iwae_k: k of the negative_iwae score.
    max_decoder_batch: see `likelihood.iwae_per_example`.
    num_batches: how many batches there are, for the progress line (None = unknown).

  Returns:
    {method: (N,) scores} plus "label" and "id" when the batches have them.

  Raises:
    ValueError: an unknown method; NoLikelihoodError: a score asked of a family without
      what it needs.
  """
  methods = tuple(methods or available_scores(objective))
  unknown = sorted(set(methods) - set(SCORES))
  if unknown:
    raise ValueError(f"Unknown anomaly score(s) {unknown}; known: {', '.join(SCORES)}.")
  if "reconstruction_error" in methods and not isinstance(objective, base.Reconstructor):
    raise likelihood_lib.NoLikelihoodError(
        f"{type(objective).__name__} has no reconstructions: it cannot give "
        f"reconstruction-error anomaly scores.")
  needs_bounds = [m for m in methods if m != "reconstruction_error"]
  bounds_fn = None
  if needs_bounds:
    bounds_fn = likelihood_lib.make_bounds_fn(
        objective, (iwae_k,) if "negative_iwae" in methods else (), max_decoder_batch)
  reconstruction_error = _reconstruction_error_fn(objective)

  def score_batch(i, batch):
    images, key = jnp.asarray(batch["image"]), jax.random.fold_in(rng, i)
    values = {}
    if "reconstruction_error" in methods:
      values["reconstruction_error"] = reconstruction_error(state, images, key)
    if bounds_fn is not None:
      bounds = bounds_fn(state, images, key)
      if "negative_elbo" in methods:
        values["negative_elbo"] = -bounds["elbo_nats"]
      if "negative_iwae" in methods:
        values["negative_iwae"] = -bounds[f"iwae_{iwae_k}_nats"]
    values = {k: np.asarray(v, np.float64) for k, v in jax.device_get(values).items()}
    return {**values, "label": batch.get("label"), "id": batch.get("id")}

  return examples.collect(progress.track(batches, num_batches, "anomaly scores"), score_batch)


def _reconstruction_error_fn(objective: Any):
  """A jitted `fn(state, images, rng)`: squared error of the reconstructions on [0, 1]."""
  @jax.jit
  def reconstruction_error(state, images, rng):
    recon = objective.reconstruct(state, {"image": images}, rng)
    diff = (recon - objective.value_range.to_unit(images)).reshape(images.shape[0], -1)
    return jnp.sum(diff**2, axis=1)

  return reconstruction_error


def evaluate_scores(scores: Mapping[str, np.ndarray], is_anomaly: np.ndarray,
                    num_bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
  """`roc_pr_auc` for each score method in `scores` (other keys are skipped)."""
  return {m: roc_pr_auc(is_anomaly, scores[m], num_bootstrap, seed=seed)
          for m in SCORES if m in scores}


# ------------------------------------------------------------------ one-class MNIST
def one_class_targets(labels: np.ndarray, normal_label: int) -> np.ndarray:
  """1 for anomalies (any label but `normal_label`), 0 for the normal class."""
  return (np.asarray(labels) != normal_label).astype(int)


def one_class_table(results: Mapping[int, Mapping[str, Mapping[str, Any]]]
                    ) -> dict[str, Any]:
  """Per-class AUROC rows and the mean over classes, per method.

  Args:
    results: {normal label: {method: `roc_pr_auc` result}}.

  Returns:
    {"per_class": {label: {method: result}}, "mean_auroc": {method: mean},
    "mean_auprc": {method: mean}}.
  """
  methods = sorted({m for per in results.values() for m in per})
  return {
      "per_class": {int(k): dict(v) for k, v in sorted(results.items())},
      "mean_auroc": {m: float(np.mean([r[m]["auroc"] for r in results.values() if m in r]))
                     for m in methods},
      "mean_auprc": {m: float(np.mean([r[m]["auprc"] for r in results.values() if m in r]))
                     for m in methods},
  }


# ------------------------------------------------------------------ image folders
def read_labels_file(path: str) -> dict[str, int]:
  """Reads a CSV labels file with a header `id,label` (1 = anomaly, 0 = normal).

  `id` is an image's file name relative to the test folder (with or without the
  extension).

  Raises:
    ValueError: a missing column or a label other than 0/1, naming the line.
  """
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    if not reader.fieldnames or not {"id", "label"} <= set(reader.fieldnames):
      raise ValueError(f"Labels file {path} needs a header 'id,label' (label 1 = anomaly, "
                       f"0 = normal), got {reader.fieldnames}.")
    labels = {}
    for line, row in enumerate(reader, start=2):
      if row["label"].strip() not in ("0", "1"):
        raise ValueError(f"{path}:{line}: label must be 0 (normal) or 1 (anomaly), got "
                         f"{row['label']!r}.")
      labels[row["id"].strip()] = int(row["label"])
  return labels


def load_image_folder(folder: str, image_shape: Sequence[int],
                      data_range: value_range.ValueRange) -> tuple[list[str], np.ndarray]:
  """Loads every image file under `folder` the way the `image_folder` dataset stores them.

  Each image is converted to grey (C=1) or RGB (C=3), centre-cropped to its largest
  square and resized to (H, H) with a Lanczos filter (`jaxgen.data.image_folder`), then
  scaled to `data_range` as the pipeline does (8-bit grey levels: 'unit' or 'symmetric'),
  so a model trained on an image-folder dataset sees test images prepared the same way.

  Returns:
    (ids: file names relative to `folder`, sorted; images (N, H, W, C) float32).
  """
  from jaxgen.data import image_folder
  height, width, channels = (int(v) for v in image_shape)
  if channels not in (1, 3) or height != width:
    raise ValueError(f"Image folders load square grey (C=1) or RGB (C=3) images; the model "
                     f"takes {tuple(image_shape)} (model.image_shape).")
  if data_range.levels != 256:
    raise ValueError(f"Image folders support data.preprocessing 'unit' or 'symmetric', "
                     f"not {data_range.preprocessing!r}.")
  ids = sorted(os.path.relpath(os.path.join(root, name), folder)
               for root, _, names in os.walk(folder) for name in names
               if name.lower().endswith(IMAGE_EXTENSIONS))
  if not ids:
    raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}.")
  images = []
  for image_id in ids:
    array = image_folder.read_image(os.path.join(folder, image_id), height,
                                    grayscale=channels == 1).astype(np.float32)
    images.append(data_range.from_uint8(array))
  return ids, np.stack(images)


def _batches(images: np.ndarray, batch_size: int):
  """Fixed-size batches with a mask, the last one zero-padded (one compilation)."""
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    mask = np.zeros(batch_size, np.float32)
    mask[:len(chunk)] = 1.0
    padded = np.zeros((batch_size,) + images.shape[1:], np.float32)
    padded[:len(chunk)] = chunk
    yield {"image": padded, "mask": mask}


def score_image_folder(objective: Any, state: Any, image_shape: Sequence[int],
                       test_folder: str, labels_file: str | None,
                       rng: jax.Array, methods: Sequence[str] | None = None,
                       iwae_k: int = 100, batch_size: int = 64,
                       num_bootstrap: int = 1000) -> dict[str, Any]:
  """The image-folder protocol: score a test folder, evaluate against its labels file.

  Args:
    objective, state: a model trained on the normal images (any data config, e.g. a
      folder dataset; the images here are loaded like `load_image_folder`).
    image_shape: the model's (H, W, C).
    test_folder: folder of test images.
    labels_file: CSV `id,label` (see `read_labels_file`); None = scores only.
    rng: key for the stochastic scores.
    methods, iwae_k: see `anomaly_scores`.
    batch_size: images per step.
    num_bootstrap: bootstrap resamples of the intervals.

  Returns:
    {"ids": [...], "scores": {method: (N,)}, "metrics": {method: `roc_pr_auc`}
    (when labelled), "is_anomaly": (N,) or None}.

  Raises:
    ValueError: an image without a label or a labelled id without an image.
  """
  ids, images = load_image_folder(test_folder, image_shape, objective.value_range)
  scores = anomaly_scores(objective, state, _batches(images, batch_size), rng,
                          methods, iwae_k,
                          num_batches=-(-len(images) // batch_size))
  out = {"ids": ids, "scores": scores, "metrics": {}, "is_anomaly": None}
  if labels_file:
    labels = read_labels_file(labels_file)
    by_stem = {os.path.splitext(k)[0]: v for k, v in labels.items()}
    missing = [i for i in ids if i not in labels and os.path.splitext(i)[0] not in by_stem]
    if missing:
      raise ValueError(f"{len(missing)} test image(s) have no label in {labels_file}, e.g. "
                       f"{missing[:3]}; add rows 'id,label' for them.")
    extra = sorted(set(labels) - set(ids) - {os.path.splitext(i)[0] for i in ids})
    if extra:
      raise ValueError(f"{labels_file} labels {len(extra)} id(s) with no image in "
                       f"{test_folder}, e.g. {extra[:3]}.")
    is_anomaly = np.asarray([labels.get(i, by_stem.get(os.path.splitext(i)[0])) for i in ids])
    out["is_anomaly"] = is_anomaly
    out["metrics"] = evaluate_scores(scores, is_anomaly, num_bootstrap)
  return out


def write_scores_csv(path: str, ids: Sequence[Any], scores: np.ndarray) -> str:
  """Writes `id,score` rows (one per example, in order); returns the path."""
  if len(ids) != len(scores):
    raise ValueError(f"{len(ids)} ids but {len(scores)} scores.")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "score"])
    for image_id, score in zip(ids, scores):
      writer.writerow([image_id, repr(float(score))])
  os.replace(path + ".tmp", path)
  return path
