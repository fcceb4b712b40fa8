"""Judging conditional GANs with a classifier trained on real labels.

  * Conditioned-class accuracy (AC-GAN): generate images for each class, label them with
    the classifier, and count how often it names the class they were conditioned on.
  * Code purity (InfoGAN): generate images for each value of a categorical code (random
    noise and other codes), label them with the classifier; purity is the fraction of
    images whose label is the most common label of their code value. Unsupervised codes
    need not map one-to-one to classes, so the matched accuracy (the best one-to-one
    assignment of code values to classes, Hungarian algorithm) and the number of
    distinct majority classes are reported too.
  * Label distribution (DCGAN): the classifier's labels over unconditional samples; a
    collapsed generator puts most of them on a few classes.

Generated images are in [0, 1] (the GAN's `generate`); the classifier objective maps
them into its own input range.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from jaxgen import figures


def classify(classifier: Any, classifier_state: Any, images_unit: np.ndarray,
             batch_size: int = 500) -> np.ndarray:
  """Predicted class of every image in [0, 1].

  Args:
    classifier: a `ClassificationObjective`.
    classifier_state: its trained state.
    images_unit: (N, H, W, C) images in [0, 1].
    batch_size: images per forward pass.

  Returns:
    (N,) int predicted classes.
  """
  predict = _jitted(classifier, "_predict_unit",
                    lambda state, x: jnp.argmax(
                        classifier.logits(state, classifier.to_input_range(x)), -1))
  return np.concatenate([np.asarray(predict(classifier_state, images_unit[i:i + batch_size]))
                         for i in range(0, len(images_unit), batch_size)])


def _generate_fn(gan: Any):
  return _jitted(gan, "_generate_all",
                 lambda state, noise, labels, codes, continuous: gan.generate(
                     state, noise, labels, codes, continuous))


def conditioned_class_accuracy(gan: Any, gan_state: Any, classifier: Any,
                               classifier_state: Any, rng: jax.Array,
                               num_per_class: int = 100) -> dict[str, Any]:
  """How often the classifier names the class an AC-GAN image was conditioned on.

  Args:
    gan: an `AdversarialObjective` whose model has `num_classes` > 0.
    gan_state: its trained state.
    classifier: a `ClassificationObjective` over the same classes.
    classifier_state: its trained state.
    rng: key for the noise.
    num_per_class: images generated per class.

  Returns:
    {"accuracy": fraction of all images labelled as their class, "per_class": (K,)
    accuracies, "confusion": (K, K) counts, rows = conditioned class, columns =
    predicted class, "num_images": K * num_per_class}.

  Raises:
    ValueError: the GAN is unconditional, or its classes do not match the classifier's.
  """
  k = gan.model.num_classes
  if not k:
    raise ValueError("conditioned_class_accuracy needs a class-conditional GAN "
                     "(model.num_classes > 0, objective.auxiliary='acgan').")
  if k != classifier.num_classes:
    raise ValueError(f"The GAN has {k} classes but the classifier {classifier.num_classes}; "
                     f"train the classifier on the GAN's labels.")
  labels = np.repeat(np.arange(k), num_per_class)
  cond = gan.draw_conditioning(rng, len(labels), jnp.asarray(labels))
  images = np.asarray(_generate_fn(gan)(gan_state, cond["noise"], cond["labels"],
                                        cond["codes"], cond["continuous"]))
  predicted = classify(classifier, classifier_state, images)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (labels, predicted), 1)
  return {"accuracy": float(np.mean(predicted == labels)),
          "per_class": confusion.diagonal() / num_per_class,
          "confusion": confusion,
          "num_images": int(len(labels))}


def code_purity(gan: Any, gan_state: Any, classifier: Any, classifier_state: Any,
                rng: jax.Array, num_per_value: int = 100, code_index: int = 0
                ) -> dict[str, Any]:
  """Purity of one InfoGAN categorical code against the classifier's labels.

  Args:
    gan: an `AdversarialObjective` with categorical codes.
    gan_state: its trained state.
    classifier: a `ClassificationObjective`.
    classifier_state: its trained state.
    rng: key for the noise and the other codes.
    num_per_value: images generated per code value.
    code_index: which categorical code.

  Returns:
    {"purity": sum over values of the majority count / all images, "matched_accuracy":
    accuracy under the best one-to-one map of values to classes, "counts": (values,
    classes) counts, "majority": (values,) most common class per value,
    "distinct_majorities": number of different majority classes, "num_images"}.

  Raises:
    ValueError: the GAN has no such categorical code.
  """
  model = gan.model
  if not 0 <= code_index < model.num_categorical_codes:
    raise ValueError(f"code_index={code_index}, but the generator has "
                     f"{model.num_categorical_codes} categorical code(s) "
                     f"(model.num_categorical_codes).")
  d = model.categorical_dim
  values = np.repeat(np.arange(d), num_per_value)
  cond = gan.draw_conditioning(rng, len(values))
  codes = jnp.asarray(cond["codes"]).at[:, code_index].set(jnp.asarray(values))
  images = np.asarray(_generate_fn(gan)(gan_state, cond["noise"], cond["labels"], codes,
                                        cond["continuous"]))
  predicted = classify(classifier, classifier_state, images)
  counts = np.zeros((d, classifier.num_classes), np.int64)
  np.add.at(counts, (values, predicted), 1)
  rows, cols = optimize.linear_sum_assignment(-counts)
  majority = counts.argmax(axis=1)
  return {"purity": float(counts.max(axis=1).sum() / len(values)),
          "matched_accuracy": float(counts[rows, cols].sum() / len(values)),
          "counts": counts,
          "majority": majority,
          "distinct_majorities": int(len(set(majority.tolist()))),
          "num_images": int(len(values))}


def predicted_class_distribution(gan: Any, gan_state: Any, classifier: Any,
                                 classifier_state: Any, rng: jax.Array,
                                 num_images: int = 1000) -> dict[str, Any]:
  """The classifier's label distribution over a GAN's samples (a view of mode coverage).

  Returns:
    {"fractions": (K,) fraction of samples per predicted class, "entropy_nats": entropy
    of that distribution (log K when uniform), "num_images"}.
  """
  cond = gan.draw_conditioning(rng, num_images)
  images = np.asarray(_generate_fn(gan)(gan_state, cond["noise"], cond["labels"],
                                        cond["codes"], cond["continuous"]))
  predicted = classify(classifier, classifier_state, images)
  fractions = np.bincount(predicted, minlength=classifier.num_classes) / num_images
  nonzero = fractions[fractions > 0]
  return {"fractions": fractions, "entropy_nats": float(-np.sum(nonzero * np.log(nonzero))) + 0.0,
          "num_images": int(num_images)}


def save_count_matrix(path: str, counts: np.ndarray, row_label: str, col_label: str,
                      title: str) -> str:
  """Saves a (rows, cols) count matrix as an annotated heat map PNG; returns the path."""
  plt = figures.plt
  counts = np.asarray(counts)
  fig, ax = plt.subplots(figsize=(0.5 * counts.shape[1] + 2, 0.45 * counts.shape[0] + 1.5))
  ax.imshow(counts, cmap="Blues")
  for (r, c), value in np.ndenumerate(counts):
    ax.text(c, r, str(value), ha="center", va="center", fontsize=7,
            color="white" if value > counts.max() / 2 else "black")
  ax.set_xticks(range(counts.shape[1]))
  ax.set_yticks(range(counts.shape[0]))
  ax.set_xlabel(col_label)
  ax.set_ylabel(row_label)
  ax.set_title(title)
  fig.tight_layout()
  return figures.save_figure(fig, path)


def _jitted(owner: Any, key: str, fn):
  """`jax.jit(fn)` cached on `owner`, so repeated analyses compile once."""
  cache = owner.__dict__.setdefault("_analysis_fns", {})
  if key not in cache:
    cache[key] = jax.jit(fn)
  return cache[key]
