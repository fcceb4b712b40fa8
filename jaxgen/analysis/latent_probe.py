"""How much a latent code knows about a label: t-SNE pictures and a linear probe.

`encode_split` turns a split into codes (posterior means for VAEs), `tsne_embedding`
embeds them in 2-D (scikit-learn), and `linear_probe` fits a logistic regression from
training-split codes to the label and scores it on test-split codes: an accuracy well
above the majority-class rate means the attribute is linearly readable from the code,
i.e. the classes are separated in latent space, which a t-SNE picture only suggests.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import data as data_lib
from jaxgen import figures


def encode_split(objective: Any, state: Any, data_config: ml_collections.ConfigDict,
                 split: str | None = None, max_examples: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
  """Codes (and labels, if the dataset has them) of a split, in split order.

  Args:
    objective: an objective with `latent_code(state, images)`.
    state: its state.
    data_config: the run's `data` config.
    split: the split (default `data.eval_split`).
    max_examples: stop after this many examples (None = the whole split).

  Returns:
    (codes (N, D) float32, labels (N,) int32 or None).
  """
  encode = jax.jit(objective.latent_code)
  codes, labels = [], []
  count = 0
  for batch in data_lib.make_eval_batches(data_config, split=split):
    real = batch["mask"] > 0
    batch_codes = np.asarray(jax.device_get(encode(state, jnp.asarray(batch["image"]))))
    codes.append(batch_codes[real])
    if "label" in batch:
      labels.append(batch["label"][real])
    count += int(real.sum())
    if max_examples and count >= max_examples:
      break
  codes_array = np.concatenate(codes)[:max_examples]
  labels_array = np.concatenate(labels)[:max_examples] if labels else None
  return codes_array.astype(np.float32), labels_array


def tsne_embedding(codes: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
  """2-D t-SNE of (N, D) codes (perplexity capped below N, as scikit-learn requires)."""
  from sklearn.manifold import TSNE
  codes = np.asarray(codes, np.float32)
  perplexity = min(perplexity, max(1.0, (len(codes) - 1) / 3.0))
  # Barnes-Hut pays off for thousands of points; below that the exact gradient is faster.
  method = "exact" if len(codes) <= 250 else "barnes_hut"
  return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
              method=method).fit_transform(codes)


def linear_probe(train_codes: np.ndarray, train_labels: np.ndarray,
                 test_codes: np.ndarray, test_labels: np.ndarray,
                 seed: int = 0) -> dict[str, float]:
  """Logistic regression from codes to labels, fit on train, scored on test.

  Codes are standardised with the training codes' statistics.

  Returns:
    {"probe_accuracy": test accuracy, "majority_accuracy": the test accuracy of always
     predicting the most common training label, "num_train": ..., "num_test": ...}.

  Raises:
    ValueError: the training labels hold a single class (nothing to probe).
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  classes = np.unique(train_labels)
  if len(classes) < 2:
    raise ValueError(f"linear_probe: the training labels hold one class ({classes}); "
                     f"there is nothing to predict.")
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
  probe.fit(train_codes, train_labels)
  majority = classes[np.argmax([np.sum(train_labels == c) for c in classes])]
  return {
      "probe_accuracy": float(probe.score(test_codes, test_labels)),
      "majority_accuracy": float(np.mean(test_labels == majority)),
      "num_train": int(len(train_labels)),
      "num_test": int(len(test_labels)),
  }


def save_tsne_figure(path: str, embedding: np.ndarray, labels: np.ndarray | None,
                     label_names: tuple[str, ...] | None, title: str) -> str:
  """Scatter plot of a 2-D embedding coloured by label; returns the path."""
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5.5, 5))
  if labels is None:
    ax.scatter(embedding[:, 0], embedding[:, 1], s=4, alpha=0.6)
  else:
    for value in np.unique(labels):
      chosen = labels == value
      name = label_names[value] if label_names and value < len(label_names) else str(value)
      ax.scatter(embedding[chosen, 0], embedding[chosen, 1], s=4, alpha=0.6,
                 label=f"{name} ({chosen.sum()})")
    ax.legend(markerscale=3, fontsize=8)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title, fontsize=9)
  return figures._save(fig, path)
