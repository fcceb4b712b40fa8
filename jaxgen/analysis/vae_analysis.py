"""Analyses of trained VAEs: checkerboard score, interpolation, prior samples, aggregate KL.

Every function takes an `autoencoding` objective and its state (as returned by
`jaxgen.train.train_and_evaluate`) or plain arrays, and returns numbers or images;
the `save_*` functions draw figures. Studies call these; nothing here trains.

  * `checkerboard_score`: the share of 2-D spectral power at and near the Nyquist
    frequencies (the period-2 patterns that uneven ConvTranspose overlap produces),
    relative to the same share on real images (1.0 = like the data).
  * `latent_interpolation`: decode a linear or spherical path between two encoded images.
  * `aggregate_kl`: KL(q(z) || p(z)) for the aggregate posterior q(z) = 1/N sum_i
    q(z|x_i), by Monte Carlo with the exact mixture density and by a moment-matched
    Gaussian, next to the mean per-example KL (see the function for how they relate).
  * `latent_manifold` / `save_latent_scatter`: for 2-D latents, a decoded grid over prior
    quantiles and the test codes coloured by label.
"""

import dataclasses
import math
import os
import warnings
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from jaxgen import data as data_lib
from jaxgen import figures
from jaxgen import registry

INTERPOLATIONS = ("linear", "spherical")


# ------------------------------------------------------------------ encoding
@dataclasses.dataclass
class EncodedSplit:
  """A whole split in its fixed order (never shuffled), with its posteriors.

  Attributes:
    images: (N, H, W, C) preprocessed images.
    labels: (N,) int labels, or None when the dataset has none.
    mu: (N, latent) posterior means.
    logvar: (N, latent) posterior log-variances.
  """
  images: np.ndarray
  labels: np.ndarray | None
  mu: np.ndarray
  logvar: np.ndarray


def encode_split(objective: Any, state: Any, data_config: ml_collections.ConfigDict,
                 split: str | None = None) -> EncodedSplit:
  """Encodes every example of `split` (default `data.eval_split`) in split order."""
  encode = jax.jit(objective.encode)
  images, labels, mus, logvars = [], [], [], []
  for batch in data_lib.make_eval_batches(data_config, split=split):
    real = batch["mask"] > 0
    mu, logvar = jax.device_get(encode(state, jnp.asarray(batch["image"])))
    images.append(batch["image"][real])
    mus.append(np.asarray(mu)[real])
    logvars.append(np.asarray(logvar)[real])
    if "label" in batch:
      labels.append(batch["label"][real])
  return EncodedSplit(images=np.concatenate(images),
                      labels=np.concatenate(labels) if labels else None,
                      mu=np.concatenate(mus), logvar=np.concatenate(logvars))


def decode(objective: Any, state: Any, z: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """Decoder means in [0, 1] for latent codes `z` (N, latent), in batches."""
  decode_fn = jax.jit(objective.decode)
  z = np.asarray(z, np.float32)
  out = [np.asarray(jax.device_get(decode_fn(state, jnp.asarray(z[i:i + batch_size]))))
         for i in range(0, len(z), batch_size)]
  return np.concatenate(out)


def spread_indices(num_examples: int, num: int) -> np.ndarray:
  """`num` evenly spaced indices into a split of `num_examples` (fixed, not random)."""
  if not 1 <= num <= num_examples:
    raise ValueError(f"Cannot pick {num} images from a split of {num_examples}.")
  return np.linspace(0, num_examples - 1, num).round().astype(int)


# ------------------------------------------------------------------ checkerboard
def build_warnings(objective: Any, image_shape: Sequence[int], match: str = "checkerboard"
                   ) -> list[str]:
  """Warnings containing `match` that building the objective's model raises.

  The state is only traced (`jax.eval_shape`), not computed. `ConvTranspose` warns
  here when its kernel size is not divisible by its stride.
  """
  example = {"image": jnp.zeros((1, *image_shape), jnp.float32)}
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), example)
  return sorted({str(w.message) for w in caught if match in str(w.message)})


def _nyquist_mask(height: int, width: int, radius: int) -> np.ndarray:
  """Frequency bins within `radius` bins of (1/2, 0), (0, 1/2) or (1/2, 1/2) cycles/pixel."""
  fy = np.abs(np.fft.fftfreq(height))[:, None]
  fx = np.abs(np.fft.fftfreq(width))[None, :]
  # Bins are 1/n apart; an odd size has no bin at exactly 1/2, its nearest is 1/(2n) away.
  near = lambda f, target, n: np.abs(f - target) <= (radius + 0.5) / n + 1e-9
  mask = np.zeros((height, width), bool)
  for ty, tx in ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5)):
    mask |= near(fy, ty, height) & near(fx, tx, width)
  return mask


def nyquist_power_share(images: np.ndarray, radius: int = 1) -> float:
  """Share of the summed 2-D power spectrum at and near the Nyquist frequencies.

  Each image (and channel) has its mean removed, so the share is of the varying part;
  the power of all images is summed before taking the share, which weights images by
  their contrast rather than letting flat images dominate.

  Args:
    images: (N, H, W, C) images.
    radius: how many frequency bins around each Nyquist point count as "near".

  Returns:
    sum of power in the Nyquist bins / total power, in [0, 1].
  """
  images = np.asarray(images, np.float64)
  if images.ndim != 4:
    raise ValueError(f"nyquist_power_share expects NHWC images, got shape {images.shape}.")
  centred = images - images.mean(axis=(1, 2), keepdims=True)
  power = np.sum(np.abs(np.fft.fft2(centred, axes=(1, 2)))**2, axis=(0, 3))
  total = power.sum()
  if total <= 0:
    raise ValueError("nyquist_power_share: the images are constant (no spectral power).")
  return float(power[_nyquist_mask(*power.shape, radius)].sum() / total)


def checkerboard_score(images: np.ndarray, reference: np.ndarray, radius: int = 1) -> float:
  """Nyquist power share of `images` relative to that of `reference` (real) images.

  A ConvTranspose whose kernel is not a multiple of its stride covers output pixels
  unevenly, which adds a period-2 pattern: power at the Nyquist frequencies. 1.0 means
  as much of it as the real images have; above 1, more (checkerboard artifacts); below
  1, less (blurrier than the data).

  Args:
    images: (N, H, W, C) decoder outputs in [0, 1].
    reference: (M, H, W, C) real images in [0, 1], same H, W, C.
    radius: see `nyquist_power_share`.
  """
  if np.shape(images)[1:] != np.shape(reference)[1:]:
    raise ValueError(f"checkerboard_score: images {np.shape(images)[1:]} and reference "
                     f"{np.shape(reference)[1:]} differ in shape.")
  reference_share = nyquist_power_share(reference, radius)
  if reference_share == 0:
    raise ValueError("checkerboard_score: the reference images have no power near the "
                     "Nyquist frequencies; use other reference images or a larger radius.")
  return nyquist_power_share(images, radius) / reference_share


# ------------------------------------------------------------------ interpolation
def first_index_of_label(labels: np.ndarray | None, label: int) -> int:
  """Position of the first example with `label` in split order."""
  if labels is None:
    raise ValueError("The dataset has no labels: pass interpolation indices explicitly.")
  hits = np.flatnonzero(np.asarray(labels) == label)
  if not len(hits):
    raise ValueError(f"No example with label {label} in the split.")
  return int(hits[0])


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
  return -0.5 * jnp.sum(math.log(2 * math.pi) + logvar + (z - mu)**2 * jnp.exp(-logvar), -1)


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


# ------------------------------------------------------------------ 2-D latents
def _check_latent_2d(latent_dim: int, what: str) -> None:
  if latent_dim != 2:
    raise ValueError(f"{what} needs a 2-D latent space (model.latent_dim=2), but this "
                     f"model has model.latent_dim={latent_dim}.")


def manifold_codes(grid_size: int = 20, quantile_range: tuple[float, float] = (0.05, 0.95)
                   ) -> np.ndarray:
  """Codes on a grid of prior quantiles, row by row, z_2 decreasing down the rows.

  Returns:
    (grid_size**2, 2) codes; row r, column c holds (Phi^-1(q_c), Phi^-1(q_{n-1-r})).
  """
  low, high = quantile_range
  if not 0 < low < high < 1:
    raise ValueError(f"quantile_range must satisfy 0 < low < high < 1, got {quantile_range}.")
  values = stats.norm.ppf(np.linspace(low, high, grid_size))
  z1, z2 = np.meshgrid(values, values[::-1])
  return np.stack([z1.ravel(), z2.ravel()], axis=1)


def latent_manifold(objective: Any, state: Any, grid_size: int = 20,
                    quantile_range: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
  """Decoded grid over prior quantiles of a 2-D latent space, (grid_size**2, H, W, C).

  Raises:
    ValueError: the model's latent space is not 2-D.
  """
  _check_latent_2d(objective.model.latent_dim, "A latent manifold grid")
  return decode(objective, state, manifold_codes(grid_size, quantile_range))


# ------------------------------------------------------------------ figures
def _fig_path(path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  return path


def save_labelled_rows(path: str, rows: Sequence[tuple[str, np.ndarray]],
                       title: str | None = None) -> str:
  """One row of [0, 1] NHWC images per (label, images) pair, labels on the left."""
  import matplotlib.pyplot as plt
  ncols = max(len(images) for _, images in rows)
  fig, axes = plt.subplots(len(rows), 1, figsize=(0.75 * ncols + 1.6, 0.85 * len(rows) + 0.5),
                           squeeze=False)
  for ax, (label, images) in zip(axes[:, 0], rows):
    images = np.asarray(images, np.float32)
    if len(images) < ncols:
      images = np.concatenate([images, np.ones((ncols - len(images),) + images.shape[1:],
                                               np.float32)])
    grid = figures.image_grid(images, ncols)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(_fig_path(path), dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def save_samples_and_reconstructions(path: str, samples: np.ndarray, originals: np.ndarray,
                                     reconstructions: np.ndarray, ncols: int = 8,
                                     title: str | None = None) -> str:
  """Three panels: test images, their reconstructions, and samples from the prior."""
  import matplotlib.pyplot as plt
  panels = [("test images", originals), ("reconstructions", reconstructions),
            ("samples from p(z)", samples)]
  fig, axes = plt.subplots(1, 3, figsize=(13, 13 * 0.33 * math.ceil(len(samples) / ncols)
                                          / ncols + 0.8))
  for ax, (label, images) in zip(axes, panels):
    grid = figures.image_grid(np.asarray(images), ncols)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(label, fontsize=10)
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.savefig(_fig_path(path), dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def save_latent_manifold(path: str, images: np.ndarray, grid_size: int,
                         quantile_range: tuple[float, float] = (0.05, 0.95),
                         title: str | None = None) -> str:
  """The decoded grid from `latent_manifold`, with the z values on the axes."""
  import matplotlib.pyplot as plt
  grid = figures.image_grid(images, grid_size, pad=0)
  values = stats.norm.ppf(np.linspace(*quantile_range, grid_size))
  size = images.shape[1]
  fig, ax = plt.subplots(figsize=(8, 8))
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ticks = np.arange(grid_size) * size + size / 2
  step = max(1, grid_size // 5)
  ax.set_xticks(ticks[::step], [f"{v:.2f}" for v in values[::step]])
  ax.set_yticks(ticks[::step], [f"{v:.2f}" for v in values[::-1][::step]])
  ax.set_xlabel("z1")
  ax.set_ylabel("z2")
  ax.set_title(title or f"decoded prior quantiles {quantile_range[0]:g}..{quantile_range[1]:g}")
  fig.savefig(_fig_path(path), dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def save_latent_scatter(path: str, mu: np.ndarray, labels: np.ndarray | None,
                        title: str | None = None) -> str:
  """Scatter of 2-D posterior means coloured by label.

  Raises:
    ValueError: the codes are not 2-D.
  """
  import matplotlib.pyplot as plt
  mu = np.asarray(mu)
  _check_latent_2d(mu.shape[-1] if mu.ndim == 2 else -1, "A latent scatter")
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  if labels is None:
    ax.scatter(mu[:, 0], mu[:, 1], s=5, alpha=0.7)
  else:
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=5, alpha=0.8,
                        vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
  ax.set_xlabel("mu_1")
  ax.set_ylabel("mu_2")
  ax.set_title(title or "posterior means of the test images")
  ax.grid(alpha=0.3)
  fig.savefig(_fig_path(path), dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


# ------------------------------------------------------------------ one model
def analyze_vae(objective: Any, state: Any, encoded: EncodedSplit, preprocessing: str,
                out_dir: str, name: str, *, figure_indices: Sequence[int],
                interpolation_pair: tuple[int, int], num_interpolation: int = 10,
                num_samples: int = 16, manifold_size: int = 20, seed: int = 0,
                kl_samples: int = 10_000) -> dict[str, Any]:
  """Every per-model analysis of the study: numbers and figures for one VAE.

  Args:
    objective: the trained `autoencoding` objective.
    state: its state.
    encoded: the test split from `encode_split`.
    preprocessing: `data.preprocessing` (to show images in [0, 1]).
    out_dir: where figures go (<out_dir>/<name>_*.png).
    name: the model's short name, used in file names and titles.
    figure_indices: fixed test indices to reconstruct.
    interpolation_pair: the two test indices to interpolate between.
    num_interpolation: images per interpolation path.
    num_samples: prior samples drawn.
    manifold_size: grid size of the 2-D manifold (2-D latents only).
    seed: seed of the prior samples and the Monte Carlo KL.
    kl_samples: Monte Carlo samples of the aggregate KL.

  Returns:
    {"checkerboard_reconstructions", "checkerboard_samples", the `aggregate_kl`
    values, "reconstructions" (for figure_indices), "interpolations" ({method:
    images}), "figures" ({title: path})}.
  """
  real = figures.to_unit_range(encoded.images, preprocessing)
  figure_indices = [check_index(i, len(real), "figure index") for i in figure_indices]
  all_recons = decode(objective, state, encoded.mu)
  # As many prior samples as test images (at most 2,000) for the score; show the first few.
  num_scored = max(num_samples, min(len(real), 2000))
  z = jax.random.normal(jax.random.PRNGKey(seed), (num_scored, objective.model.latent_dim))
  samples = decode(objective, state, np.asarray(z))
  out: dict[str, Any] = {
      "checkerboard_reconstructions": checkerboard_score(all_recons, real),
      "checkerboard_samples": checkerboard_score(samples, real),
      **aggregate_kl(encoded.mu, encoded.logvar, kl_samples, seed),
      "reconstructions": all_recons[figure_indices],
      "interpolations": {},
      "figures": {},
  }
  index_a, index_b = interpolation_pair
  for method in INTERPOLATIONS:
    out["interpolations"][method] = latent_interpolation(
        objective, state, encoded, index_a, index_b, num_interpolation, method)
  out["figures"]["reconstructions and prior samples"] = save_samples_and_reconstructions(
      os.path.join(out_dir, f"{name}_samples_and_reconstructions.png"), samples[:num_samples],
      real[figure_indices][:num_samples], out["reconstructions"][:num_samples],
      title=f"model {name}")
  if objective.model.latent_dim == 2:
    out["figures"]["latent manifold"] = save_latent_manifold(
        os.path.join(out_dir, f"{name}_manifold.png"),
        latent_manifold(objective, state, manifold_size), manifold_size,
        title=f"model {name}: decoded prior quantiles 0.05..0.95")
    out["figures"]["test latents"] = save_latent_scatter(
        os.path.join(out_dir, f"{name}_latents.png"), encoded.mu, encoded.labels,
        title=f"model {name}: posterior means of the test images")
  return out


def summary_row(values: Mapping[str, Any]) -> dict[str, float]:
  """The scalar entries of an `analyze_vae` result."""
  return {k: float(v) for k, v in values.items() if isinstance(v, (int, float, np.floating))}
