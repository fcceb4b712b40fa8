"""Latent-space analysis of autoencoders: embeddings, clustering, activity, traversals.

  * t-SNE of the posterior means (or the codes themselves when they are 2-D), coloured
    by label, with the k-NN accuracy (cross-validated) and silhouette score of the
    labels computed in the latent space itself (not in the 2-D picture).
  * Active units (Burda et al., 2016): dimension u is active when Cov_x(E_q[z_u | x])
    exceeds 0.01; a collapsed dimension carries no information about x.
  * Per-dimension KL(q(z_u|x) || N(0, 1)) averaged over x: where the rate is spent.
  * Traversals: decode a base code while one dimension sweeps a range.
"""

from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACTIVE_UNIT_THRESHOLD = 0.01


def encode_batches(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                   max_examples: int | None = None) -> dict[str, np.ndarray]:
  """Posterior means (and log-variances, and labels) of every unpadded example.

  Returns:
    {"mu": (N, D), "logvar": (N, D) (absent for deterministic encoders),
    "label": (N,) when the batches have labels}.
  """
  encode = jax.jit(objective.encode)
  collected: dict[str, list[np.ndarray]] = {}
  seen = 0
  for batch in batches:
    keep = np.asarray(batch.get("mask", np.ones(len(batch["image"])))) > 0
    mu, logvar = jax.device_get(encode(state, jnp.asarray(batch["image"])))
    values = {"mu": mu, "logvar": logvar, "label": batch.get("label")}
    for name, value in values.items():
      if value is not None:
        collected.setdefault(name, []).append(np.asarray(value)[keep])
    seen += int(keep.sum())
    if max_examples and seen >= max_examples:
      break
  out = {k: np.concatenate(v) for k, v in collected.items()}
  return {k: v[:max_examples] if max_examples else v for k, v in out.items()}


def active_units(mu: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD
                 ) -> tuple[int, np.ndarray]:
  """(number of active dimensions, per-dimension variance of the posterior means)."""
  variances = np.var(np.asarray(mu, np.float64), axis=0)
  return int(np.sum(variances > threshold)), variances


def per_dimension_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
  """(D,) mean over examples of KL(N(mu_u, exp(logvar_u)) || N(0, 1)), in nats."""
  mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
  return np.mean(0.5 * (np.exp(logvar) + mu**2 - 1.0 - logvar), axis=0)


def knn_accuracy(codes: np.ndarray, labels: np.ndarray, k: int = 5, folds: int = 5,
                 seed: int = 0) -> float:
  """Cross-validated accuracy of a k-NN classifier of the labels from the codes."""
  from sklearn import model_selection
  from sklearn import neighbors
  splitter = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
  scores = model_selection.cross_val_score(
      neighbors.KNeighborsClassifier(n_neighbors=k), codes, labels, cv=splitter)
  return float(np.mean(scores))


def silhouette(codes: np.ndarray, labels: np.ndarray, max_examples: int = 5000,
               seed: int = 0) -> float:
  """Silhouette score of the labels as clusters of the codes (in [-1, 1])."""
  from sklearn import metrics
  return float(metrics.silhouette_score(
      codes, labels, sample_size=min(max_examples, len(codes)), random_state=seed))


def embed_2d(codes: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
  """A 2-D picture of the codes: t-SNE, or the codes themselves when already 2-D."""
  codes = np.asarray(codes, np.float64)
  if codes.shape[1] == 2:
    return codes
  from sklearn import manifold
  perplexity = min(perplexity, max(2.0, (len(codes) - 1) / 3))
  return manifold.TSNE(n_components=2, perplexity=perplexity, init="pca",
                       random_state=seed).fit_transform(codes)


def analyze(encoded: Mapping[str, np.ndarray], knn_k: int = 5, seed: int = 0
            ) -> dict[str, Any]:
  """Latent statistics of `encode_batches` output, ready for eval.json.

  Returns:
    {"latent_dim", "num_examples", "active_units", "active_unit_threshold",
    "mean_variance_per_dim", and when the encoder is stochastic "kl_per_dim_nats" and
    "kl_nats" (their sum); when labelled: "knn_accuracy", "knn_k", "silhouette"}.
  """
  mu = encoded["mu"]
  num_active, variances = active_units(mu)
  out: dict[str, Any] = {
      "latent_dim": int(mu.shape[1]), "num_examples": int(len(mu)),
      "active_units": num_active, "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
      "mean_variance_per_dim": [float(v) for v in variances],
  }
  if "logvar" in encoded:
    kl = per_dimension_kl(mu, encoded["logvar"])
    out["kl_per_dim_nats"] = [float(v) for v in kl]
    out["kl_nats"] = float(kl.sum())
  labels = encoded.get("label")
  if labels is not None and len(np.unique(labels)) > 1:
    folds = int(min(5, np.min(np.unique(labels, return_counts=True)[1])))
    if folds >= 2:
      out["knn_accuracy"] = knn_accuracy(mu, labels, knn_k, folds, seed)
      out["knn_k"] = knn_k
    out["silhouette"] = silhouette(mu, labels, seed=seed)
  return out


def traversal(objective: Any, state: Any, base: np.ndarray, dims: Sequence[int],
              values: Sequence[float]) -> np.ndarray:
  """Decodes `base` with dimension d set to each of `values`, for each d in `dims`.

  Args:
    objective: an autoencoding objective (`decode(state, z)` -> [0, 1] images).
    state: its state.
    base: (D,) the code to start from (e.g. a test image's posterior mean).
    dims: the dimensions to sweep (one row each).
    values: the values each swept dimension takes (one column each).

  Returns:
    (len(dims) * len(values), H, W, C) images in [0, 1], row by row.
  """
  base = np.asarray(base, np.float32)
  codes = np.repeat(base[None], len(dims) * len(values), axis=0)
  for row, d in enumerate(dims):
    codes[row * len(values):(row + 1) * len(values), d] = values
  return np.asarray(jax.device_get(jax.jit(objective.decode)(state, jnp.asarray(codes))))


def save_embedding_plot(path: str, points: np.ndarray, labels: np.ndarray | None,
                        title: str, label_names: Sequence[str] | None = None) -> str:
  """Scatter plot of 2-D points coloured by label; returns the path."""
  from jaxgen import figures
  plt = figures.plt
  fig, ax = plt.subplots(figsize=(6, 5.4))
  if labels is None:
    ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.7)
  else:
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
      sel = labels == c
      name = label_names[int(c)] if label_names is not None else str(c)
      ax.scatter(points[sel, 0], points[sel, 1], s=4, alpha=0.7, color=cmap(i % cmap.N),
                 label=name)
    ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2)
  ax.set_title(title, fontsize=10)
  ax.set_xticks([])
  ax.set_yticks([])
  return figures._save(fig, path)  # pylint: disable=protected-access


def save_kl_per_dim_plot(path: str, kl_per_dim: Sequence[float], title: str) -> str:
  """Bar chart of the mean KL per latent dimension; returns the path."""
  from jaxgen import figures
  plt = figures.plt
  fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(kl_per_dim) + 2), 3.0))
  ax.bar(np.arange(len(kl_per_dim)), kl_per_dim)
  ax.set_xlabel("latent dimension")
  ax.set_ylabel("mean KL (nats)")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return figures._save(fig, path)  # pylint: disable=protected-access
