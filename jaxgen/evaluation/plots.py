"""Figures of evaluations and studies: embeddings, per-dimension KL, labelled image rows.

Every function saves one PNG through `jaxgen.figures` and returns its path.
"""

from typing import Sequence

import numpy as np

from jaxgen import figures

plt = figures.plt

# The unit of codes on an axis: one prior standard deviation for a VAE's N(0, I) prior.
LATENT_UNITS = "latent units"
CODE_AXES = (f"mu_1 ({LATENT_UNITS})", f"mu_2 ({LATENT_UNITS})")  # 2-D posterior means.
# A t-SNE map's coordinates have no unit: only neighbourhoods mean something.
TSNE_AXES = ("t-SNE 1 (arbitrary units)", "t-SNE 2 (arbitrary units)")


def _show(ax, grid: np.ndarray) -> None:
  """Draws a [0, 1] image grid without axes, grey for one channel."""
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])


def save_embedding_plot(path: str, points: np.ndarray, labels: np.ndarray | None,
                        title: str, label_names: Sequence[str] | None = None,
                        axis_labels: tuple[str, str] = TSNE_AXES) -> str:
  """Scatter plot of 2-D points (e.g. `latents.embed_2d`) coloured by label; the default
  axis labels are a t-SNE map's."""
  fig, ax = plt.subplots(figsize=(6, 5.4))
  if labels is None:
    ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.7)
  else:
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
      chosen = labels == c
      name = (label_names[int(c)] if label_names is not None and int(c) < len(label_names)
              else str(c))
      ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.7, color=cmap(i % cmap.N),
                 label=f"{name} ({int(chosen.sum())})")
    ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2)
  ax.set_title(title, fontsize=10)
  ax.set_xlabel(axis_labels[0])
  ax.set_ylabel(axis_labels[1])
  return figures.save_figure(fig, path)


def save_kl_per_dim_plot(path: str, kl_per_dim: Sequence[float], title: str) -> str:
  """Bar chart of the mean KL per latent dimension; returns the path."""
  fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(kl_per_dim) + 2), 3.0))
  ax.bar(np.arange(len(kl_per_dim)), kl_per_dim)
  figures.whole_number_ticks(ax.xaxis)
  ax.set_xlabel("latent dimension")
  ax.set_ylabel("mean KL (nats)")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return figures.save_figure(fig, path)


def save_labelled_rows(path: str, rows: Sequence[tuple[str, np.ndarray]],
                       title: str | None = None) -> str:
  """One row of [0, 1] NHWC images per (label, images) pair, labels on the left.

  Shorter rows are padded with white on the right. Each image is 0.75 inches wide, or
  wider so its pixels keep `figures.MIN_PIXELS_PER_IMAGE_PIXEL`.
  """
  ncols = max(len(images) for _, images in rows)
  grids = []
  for _, images in rows:
    images = np.asarray(images, np.float32)
    if len(images) < ncols:
      images = np.concatenate([images, np.ones((ncols - len(images),) + images.shape[1:],
                                               np.float32)])
    grids.append(figures.image_grid(images, ncols))
  scale = figures.pixel_inches((1, grids[0].shape[1]), long_side=0.75 * ncols)
  # Placed in inches: 1.6 on the left for the labels, 0.1 between rows.
  width, height = grids[0].shape[1] * scale, grids[0].shape[0] * scale
  fig_w, fig_h = 1.6 + width, len(grids) * (height + 0.1) + (0.5 if title else 0.0)
  fig = plt.figure(figsize=(fig_w, fig_h))
  for i, ((label, _), grid) in enumerate(zip(rows, grids)):
    ax = fig.add_axes((1.6 / fig_w, (len(grids) - 1 - i) * (height + 0.1) / fig_h,
                       width / fig_w, height / fig_h))
    _show(ax, grid)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10, y=1.0 - 0.1 / fig_h, va="top")
  return figures.save_figure(fig, path)


def save_grid_with_column_titles(path: str, grid: np.ndarray, titles: Sequence[str],
                                 title: str | None = None) -> str:
  """Saves a row-by-row grid with one title per column; returns the path."""
  ncols = len(titles)
  tiled = figures.image_grid(grid, ncols)
  # 1.3 inches per column, larger for big images; 0.8 inches above for the slanted titles.
  long_side = 1.3 * ncols * max(tiled.shape[:2]) / tiled.shape[1]
  fig, (ax,) = figures.image_row([tiled], title=title, long_side=long_side, head=0.8)
  width = tiled.shape[1] / ncols
  for i, text in enumerate(titles):
    ax.text((i + 0.5) * width, -2, text, ha="center", va="bottom", fontsize=7, rotation=30)
  return figures.save_figure(fig, path)
