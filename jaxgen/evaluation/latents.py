"""Latent-space analysis of autoencoders and VAEs: one encoder pass, then statistics.

  * `encode_split`: the one loop that encodes a split (posterior means, log-variances,
    labels and, if asked, the images), in split order.
  * t-SNE of the codes (`embed_2d`), the k-NN accuracy (cross-validated) and silhouette
    score of the labels in the latent space itself, and a linear probe (logistic
    regression from training codes to labels, scored on test codes).
  * Active units (Burda et al., 2016): dimension u is active when Cov_x(E_q[z_u | x])
    exceeds 0.01; a collapsed dimension carries no information about x.
  * Per-dimension KL(q(z_u|x) || N(0, 1)) averaged over x: where the rate is spent.
  * Traversals and interpolations: decode a code while one dimension sweeps a range,
    or along a linear or spherical path between two codes.
  * `aggregate_kl`: KL(q(z) || p(z)) for the aggregate posterior q(z) = 1/N sum_i
    q(z|x_i), by Monte Carlo and moment matching, next to the mean per-example KL.

Models are `base.Autoencoder`s (`encode`, `decode`); statistics of the posterior
variance need a stochastic encoder (a VAE).
"""

import dataclasses
import math
from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen import registry
from jaxgen.evaluation import examples

ACTIVE_UNIT_THRESHOLD = 0.01
INTERPOLATIONS = ("linear", "spherical")


# ------------------------------------------------------------------ encoding
@dataclasses.dataclass
class EncodedSplit:
  """Encoded examples of a split in its fixed order (never shuffled).

  Attributes:
    mu: (N, latent) posterior means (an autoencoder's codes).
    logvar: (N, latent) posterior log-variances, or None for a deterministic encoder.
    labels: (N,) int labels, or None when the dataset has none.
    images: (N, H, W, C) preprocessed images, or None unless kept.
  """
  mu: np.ndarray
  logvar: np.ndarray | None
  labels: np.ndarray | None
  images: np.ndarray | None = None


def encode_split(objective: Any, state: Any, batches: Iterable[Mapping[str, np.ndarray]],
                 max_examples: int | None = None, keep_images: bool = False,
                 rng: jax.Array | None = None) -> EncodedSplit:
  """Encodes every unpadded example of `batches` (e.g. `data.make_eval_batches`).

  Args:
    objective: a `base.Autoencoder`.
    state: its state.
    batches: eval batches with "image", "mask" and optionally "label".
    max_examples: stop after this many examples (None = all).
    keep_images: also return the images.
    rng: passed to `encode` (None: the encoder needs no randomness).
  """
  encode = jax.jit(objective.encode)

  def encode_batch(_, batch):
    mu, logvar = jax.device_get(encode(state, jnp.asarray(batch["image"]), rng))
    return {"mu": mu, "logvar": logvar, "labels": batch.get("label"),
            "images": batch["image"] if keep_images else None}

  arrays = examples.collect(batches, encode_batch, max_examples)
  return EncodedSplit(mu=arrays["mu"], logvar=arrays.get("logvar"),
                      labels=arrays.get("labels"), images=arrays.get("images"))


def decode(objective: Any, state: Any, z: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """Decoder means in [0, 1] for latent codes `z` (N, latent), in batches."""
  decode_fn = jax.jit(objective.decode)
  z = np.asarray(z, np.float32)
  out = [np.asarray(jax.device_get(decode_fn(state, jnp.asarray(z[i:i + batch_size]))))
         for i in range(0, len(z), batch_size)]
  return np.concatenate(out)


# ------------------------------------------------------------------ statistics
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
  """A 2-D picture of (N, D) codes: t-SNE, or the codes themselves when already 2-D.

  The perplexity is capped below N, as scikit-learn requires.
  """
  codes = np.asarray(codes, np.float32)
  if codes.shape[1] == 2:
    return codes
  from sklearn import manifold
  perplexity = min(perplexity, max(1.0, (len(codes) - 1) / 3.0))
  # Barnes-Hut pays off for thousands of points; below that the exact gradient is faster.
  method = "exact" if len(codes) <= 250 else "barnes_hut"
  return manifold.TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                       method=method).fit_transform(codes)


def analyze(encoded: EncodedSplit, knn_k: int = 5, seed: int = 0) -> dict[str, Any]:
  """Latent statistics of `encode_split` output, ready for eval.json.

  Returns:
    {"latent_dim", "num_examples", "active_units", "active_unit_threshold",
    "mean_variance_per_dim", and when the encoder is stochastic "kl_per_dim_nats" and
    "kl_nats" (their sum); when labelled: "knn_accuracy", "knn_k", "silhouette"}.
  """
  mu = encoded.mu
  num_active, variances = active_units(mu)
  out: dict[str, Any] = {
      "latent_dim": int(mu.shape[1]), "num_examples": int(len(mu)),
      "active_units": num_active, "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
      "mean_variance_per_dim": [float(v) for v in variances],
  }
  if encoded.logvar is not None:
    kl = per_dimension_kl(mu, encoded.logvar)
    out["kl_per_dim_nats"] = [float(v) for v in kl]
    out["kl_nats"] = float(kl.sum())
  labels = encoded.labels
  if labels is not None and len(np.unique(labels)) > 1:
    folds = int(min(5, np.min(np.unique(labels, return_counts=True)[1])))
    if folds >= 2:
      out["knn_accuracy"] = knn_accuracy(mu, labels, knn_k, folds, seed)
      out["knn_k"] = knn_k
    out["silhouette"] = silhouette(mu, labels, seed=seed)
  return out


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


# ------------------------------------------------------------------ decoded paths
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


def check_index(index: int, num_examples: int, name: str = "index") -> int:
  """Returns `index` if 0 <= index < num_examples, else a ValueError naming `name`."""
  if not isinstance(index, (int, np.integer)) or not 0 <= index < num_examples:
    raise ValueError(f"{name}={index!r} is out of range: the split has {num_examples} "
                     f"examples (valid indices 0..{num_examples - 1}).")
  return int(index)


def interpolate_latents(z_a: np.ndarray, z_b: np.ndarray, num: int,
                        method: str = "linear") -> np.ndarray:
  """`num` codes from z_a to z_b (both included), (num, latent).

  Args:
    z_a, z_b: (latent,) end points.
    num: number of points, >= 2.
    method: 'linear' ((1 - t) z_a + t z_b) or 'spherical' (slerp: along the great
      circle, which keeps codes at the norms typical of a Gaussian prior instead of
      cutting through the low-norm centre).
  """
  method = registry.lookup("interpolation", method, {k: k for k in INTERPOLATIONS})
  if num < 2:
    raise ValueError(f"An interpolation needs num >= 2 points, got {num}.")
  z_a, z_b = np.asarray(z_a, np.float64), np.asarray(z_b, np.float64)
  t = np.linspace(0.0, 1.0, num)[:, None]
  if method == "spherical":
    cos = np.dot(z_a, z_b) / max(np.linalg.norm(z_a) * np.linalg.norm(z_b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) > 1e-6:  # Parallel end points: slerp is the linear path.
      return (np.sin((1 - t) * omega) * z_a + np.sin(t * omega) * z_b) / np.sin(omega)
  return (1 - t) * z_a + t * z_b


def latent_interpolation(objective: Any, state: Any, encoded: EncodedSplit, index_a: int,
                         index_b: int, num: int = 10, method: str = "linear") -> np.ndarray:
  """Decoded path between the posterior means of two examples of `encoded`.

  Returns:
    (num, H, W, C) decoder means in [0, 1]; the first and last decode the end points.
  """
  n = len(encoded.mu)
  index_a = check_index(index_a, n, "index_a")
  index_b = check_index(index_b, n, "index_b")
  path = interpolate_latents(encoded.mu[index_a], encoded.mu[index_b], num, method)
  return decode(objective, state, path)


# ------------------------------------------------------------------ aggregate KL
def _log_normal(z: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  return jnp.sum(losses.normal_log_prob(z, mu, 0.5 * logvar), axis=-1)


@jax.jit
def _mixture_log_density(z: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """log (1/N sum_j N(z; mu_j, diag exp(logvar_j))) for each row of z (M, latent)."""
  log_components = _log_normal(z[:, None, :], mu[None], logvar[None])  # (M, N)
  return jax.nn.logsumexp(log_components, axis=1) - math.log(mu.shape[0])


def aggregate_kl(mu: np.ndarray, logvar: np.ndarray, num_samples: int = 10_000,
                 seed: int = 0, chunk: int = 256) -> dict[str, float]:
  """KL between the aggregate posterior q(z) = 1/N sum_i q(z|x_i) and p(z) = N(0, I).

  Three numbers, in nats:
    * `aggregate_kl_mc_nats`: E_q[log q(z) - log p(z)] by Monte Carlo: z drawn from
      the mixture (each component equally often), log q(z) the exact mixture density.
      `aggregate_kl_mc_stderr_nats` is its standard error.
    * `aggregate_kl_moment_matched_nats`: KL(N(m, C) || p) for the Gaussian with the
      mixture's mean m = mean_i mu_i and covariance C = mean_i diag(sigma_i^2) +
      Cov_i(mu_i). Because log p is quadratic, KL(q || p) = KL(N(m, C) || p) +
      KL(q || N(m, C)): the moment-matched value is a lower bound, short by how far q
      is from Gaussian (clusters, holes).
    * `mean_kl_nats`: mean_i KL(q(z|x_i) || p), the KL term of the ELBO. It equals
      KL(q || p) + I(x; z) (the mutual information between the example index and z
      under q), so it is an upper bound, short of it by at most log N.

  Args:
    mu: (N, latent) posterior means.
    logvar: (N, latent) posterior log-variances.
    num_samples: Monte Carlo samples (rounded up to a multiple of N).
    seed: seed of the samples (fixed: the estimate is reproducible).
    chunk: samples scored against all N components at a time.

  Returns:
    The four values described above.
  """
  mu = np.asarray(mu, np.float32)
  logvar = np.asarray(logvar, np.float32)
  if mu.ndim != 2 or mu.shape != logvar.shape or len(mu) == 0:
    raise ValueError(f"aggregate_kl expects mu and logvar of the same shape (N, latent), "
                     f"got {mu.shape} and {logvar.shape}.")
  n, dim = mu.shape
  per_component = max(1, -(-num_samples // n))
  rng = np.random.default_rng(seed)
  component = np.repeat(np.arange(n), per_component)
  z = (mu[component] + np.exp(0.5 * logvar[component])
       * rng.standard_normal((len(component), dim)).astype(np.float32))
  log_q = np.concatenate([
      np.asarray(_mixture_log_density(jnp.asarray(z[i:i + chunk]), mu, logvar))
      for i in range(0, len(z), chunk)])
  log_p = -0.5 * np.sum(z.astype(np.float64)**2 + math.log(2 * math.pi), axis=1)
  diff = log_q.astype(np.float64) - log_p

  mu64, var64 = mu.astype(np.float64), np.exp(logvar.astype(np.float64))
  mean = mu64.mean(axis=0)
  cov = np.diag(var64.mean(axis=0)) + np.cov(mu64, rowvar=False, bias=True).reshape(dim, dim)
  _, logdet = np.linalg.slogdet(cov)
  moment_matched = 0.5 * (np.trace(cov) + mean @ mean - dim - logdet)
  per_example = 0.5 * np.sum(var64 + mu64**2 - 1.0 - np.log(var64), axis=1)
  return {
      "aggregate_kl_mc_nats": float(diff.mean()),
      "aggregate_kl_mc_stderr_nats": float(diff.std(ddof=1) / math.sqrt(len(diff))),
      "aggregate_kl_moment_matched_nats": float(moment_matched),
      "mean_kl_nats": float(per_example.mean()),
  }
