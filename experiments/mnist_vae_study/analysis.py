"""The MNIST study's analyses of trained VAEs: checkerboard score, 2-D latent figures.

Generic latent tools (encoding a split, interpolations, aggregate KL) live in
`jaxgen.evaluation.latents`; what only this study reports lives here:

  * `checkerboard_score`: the share of 2-D spectral power at and near the Nyquist
    frequencies (the period-2 patterns that uneven ConvTranspose overlap produces),
    relative to the same share on real images (1.0 = like the data).
  * `latent_manifold` / `save_latent_scatter`: for 2-D latents, a decoded grid over prior
    quantiles and the test codes coloured by label.
  * `analyze_vae`: every per-model number and figure of the report.
"""

import os
import warnings
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxgen import figures
from jaxgen.evaluation import latents
from jaxgen.evaluation import plots

plt = figures.plt


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
def mean_power_spectrum(images: np.ndarray) -> np.ndarray:
  """Mean 2-D power spectrum of NHWC images (means removed, channels summed), as a share
  of the total, shifted so the zero frequency is in the centre and the Nyquist rows and
  columns (-1/2 cycles/pixel) are the first ones."""
  images = np.asarray(images, np.float64)
  centred = images - images.mean(axis=(1, 2), keepdims=True)
  power = np.sum(np.abs(np.fft.fft2(centred, axes=(1, 2)))**2, axis=(0, 3))
  return np.fft.fftshift(power / power.sum())


def save_checkerboard_figure(path: str, real: np.ndarray, samples: Mapping[str, np.ndarray],
                             num_images: int = 4, upscale: int = 6, radius: int = 1) -> str:
  """What the checkerboard score measures, at a size a reader sees without zooming.

  One row per model (real test digits first): `num_images` prior samples enlarged
  `upscale` times with nearest-neighbour pixels, then the log mean power spectrum of all
  of that row's images with the Nyquist bins the score counts outlined in red.

  Args:
    path: the PNG to write.
    real: (N, H, W, C) real images in [0, 1].
    samples: {model name: (M, H, W, C) decoder means of z ~ N(0, I)} in [0, 1].
    num_images: images shown per row.
    upscale: pixels per image pixel (6 makes a 28-pixel digit 168 pixels wide).
    radius: the Nyquist neighbourhood of `checkerboard_score`.
  """
  rows = [("real test digits", real)] + [(f"model {k}: prior samples", v)
                                         for k, v in samples.items()]
  height, width = real.shape[1:3]
  cell = upscale * max(height, width) / 100 + 0.8  # Inches at 100 dpi, with room for labels.
  fig, axes = plt.subplots(len(rows), num_images + 1, squeeze=False,
                           figsize=(cell * (num_images + 1), cell * len(rows) + 0.6))
  nyquist = np.fft.fftshift(_nyquist_mask(height, width, radius))
  for row_axes, (label, images) in zip(axes, rows):
    for ax, image in zip(row_axes[:num_images], np.asarray(images)[:num_images]):
      big = np.repeat(np.repeat(image.mean(axis=-1), upscale, 0), upscale, 1)
      ax.imshow(big, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
      ax.set_xticks([]), ax.set_yticks([])
    row_axes[0].set_ylabel(label, fontsize=9)
    spectrum_ax = row_axes[num_images]
    spectrum_ax.imshow(np.log10(mean_power_spectrum(images) + 1e-12), cmap="viridis",
                       interpolation="nearest", extent=(-0.5, 0.5, 0.5, -0.5))
    spectrum_ax.contour(np.linspace(-0.5, 0.5, width), np.linspace(-0.5, 0.5, height),
                        nyquist.astype(float), levels=[0.5], colors="red", linewidths=1)
    spectrum_ax.set_xlabel("cycles / pixel (x)", fontsize=8)
    spectrum_ax.set_ylabel("cycles / pixel (y)", fontsize=8)
    spectrum_ax.set_title("log10 power share", fontsize=8)
  fig.suptitle(f"prior samples x{upscale} (nearest pixels) and mean power spectra; red: the "
               f"Nyquist bins of the checkerboard score")
  fig.tight_layout()
  return figures.save_figure(fig, path)


def first_index_of_label(labels: np.ndarray | None, label: int) -> int:
  """Position of the first example with `label` in split order."""
  if labels is None:
    raise ValueError("The dataset has no labels: pass interpolation indices explicitly.")
  hits = np.flatnonzero(np.asarray(labels) == label)
  if not len(hits):
    raise ValueError(f"No example with label {label} in the split.")
  return int(hits[0])


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
  _check_latent_2d(objective.latent_dim, "A latent manifold grid")
  return latents.decode(objective, state, manifold_codes(grid_size, quantile_range))


# ------------------------------------------------------------------ figures
def save_samples_and_reconstructions(path: str, samples: np.ndarray, originals: np.ndarray,
                                     reconstructions: np.ndarray, ncols: int = 8,
                                     title: str | None = None) -> str:
  """Three panels: test images, their reconstructions, and samples from the prior."""
  panels = [("test images", originals), ("reconstructions", reconstructions),
            ("samples from p(z)", samples)]
  fig, _ = figures.image_row([figures.image_grid(np.asarray(images), ncols)
                              for _, images in panels],
                             [label for label, _ in panels], title, long_side=13.0)
  return figures.save_figure(fig, path)


def save_latent_manifold(path: str, images: np.ndarray, grid_size: int,
                         quantile_range: tuple[float, float] = (0.05, 0.95),
                         title: str | None = None) -> str:
  """The decoded grid from `latent_manifold`, with the z values on the axes."""
  grid = figures.image_grid(images, grid_size, pad=0)
  values = stats.norm.ppf(np.linspace(*quantile_range, grid_size))
  size = images.shape[1]
  # Placed in inches, with room for the z ticks and labels, so every pixel keeps its size.
  scale = figures.pixel_inches(grid.shape, long_side=6.2)
  width, height = grid.shape[1] * scale, grid.shape[0] * scale
  fig = plt.figure(figsize=(width + 1.0, height + 0.9))
  ax = fig.add_axes((0.8 / (width + 1.0), 0.6 / (height + 0.9), width / (width + 1.0),
                     height / (height + 0.9)))
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ticks = np.arange(grid_size) * size + size / 2
  step = max(1, grid_size // 5)
  ax.set_xticks(ticks[::step], [f"{v:.2f}" for v in values[::step]])
  ax.set_yticks(ticks[::step], [f"{v:.2f}" for v in values[::-1][::step]])
  ax.set_xlabel(f"z1 ({plots.LATENT_UNITS})")
  ax.set_ylabel(f"z2 ({plots.LATENT_UNITS})")
  ax.set_title(title or f"decoded prior quantiles {quantile_range[0]:g}..{quantile_range[1]:g}")
  return figures.save_figure(fig, path)


def save_latent_scatter(path: str, mu: np.ndarray, labels: np.ndarray | None,
                        title: str | None = None) -> str:
  """Scatter of 2-D posterior means coloured by label.

  Raises:
    ValueError: the codes are not 2-D.
  """
  mu = np.asarray(mu)
  _check_latent_2d(mu.shape[-1] if mu.ndim == 2 else -1, "A latent scatter")
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  if labels is None:
    ax.scatter(mu[:, 0], mu[:, 1], s=5, alpha=0.7)
  else:
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=5, alpha=0.8,
                        vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
  ax.set_xlabel(plots.CODE_AXES[0])
  ax.set_ylabel(plots.CODE_AXES[1])
  ax.set_title(title or "posterior means of the test images")
  ax.grid(alpha=0.3)
  return figures.save_figure(fig, path)


# ------------------------------------------------------------------ one model
def analyze_vae(objective: Any, state: Any, encoded: latents.EncodedSplit, out_dir: str,
                name: str, *, figure_indices: Sequence[int],
                interpolation_pair: tuple[int, int], num_interpolation: int = 10,
                num_samples: int = 16, manifold_size: int = 20, seed: int = 0,
                kl_samples: int = 10_000) -> dict[str, Any]:
  """Every per-model analysis of the study: numbers and figures for one VAE.

  Args:
    objective: the trained `autoencoding` objective.
    state: its state.
    encoded: the test split from `latents.encode_split(..., keep_images=True)`.
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
  real = objective.value_range.to_unit(encoded.images)
  figure_indices = [latents.check_index(i, len(real), "figure index") for i in figure_indices]
  all_recons = latents.decode(objective, state, encoded.mu)
  # As many prior samples as test images (at most 2,000) for the score; show the first few.
  num_scored = max(num_samples, min(len(real), 2000))
  z = jax.random.normal(jax.random.PRNGKey(seed), (num_scored, objective.latent_dim))
  samples = latents.decode(objective, state, np.asarray(z))
  out: dict[str, Any] = {
      "checkerboard_reconstructions": checkerboard_score(all_recons, real),
      "checkerboard_samples": checkerboard_score(samples, real),
      **latents.aggregate_kl(encoded.mu, encoded.logvar, kl_samples, seed),
      "reconstructions": all_recons[figure_indices],
      "samples": samples,
      "interpolations": {},
      "figures": {},
  }
  index_a, index_b = interpolation_pair
  for method in latents.INTERPOLATIONS:
    out["interpolations"][method] = latents.latent_interpolation(
        objective, state, encoded, index_a, index_b, num_interpolation, method)
  out["figures"]["reconstructions and prior samples"] = save_samples_and_reconstructions(
      os.path.join(out_dir, f"{name}_samples_and_reconstructions.png"), samples[:num_samples],
      real[figure_indices][:num_samples], out["reconstructions"][:num_samples],
      title=f"model {name}")
  if objective.latent_dim == 2:
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
