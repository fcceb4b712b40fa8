"""Figures of evaluations and studies: embeddings, per-dimension KL, labelled image rows.

Every function saves one PNG through `jaxgen.figures` and returns its path.
"""

from typing import Sequence

import numpy as np

from jaxgen import figures

plt = figures.plt
ticker = figures.matplotlib.ticker


def _show(ax, grid: np.ndarray) -> None:
  """Draws a [0, 1] image grid without axes, grey for one channel."""
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])


def save_embedding_plot(path: str, points: np.ndarray, labels: np.ndarray | None,
                        title: str, label_names: Sequence[str] | None = None) -> str:
  """Scatter plot of 2-D points (e.g. `latents.embed_2d`) coloured by label."""
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
  ax.set_xticks([])
  ax.set_yticks([])
  return figures.save_figure(fig, path)


def save_kl_per_dim_plot(path: str, kl_per_dim: Sequence[float], title: str) -> str:
  """Bar chart of the mean KL per latent dimension; returns the path."""
  fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(kl_per_dim) + 2), 3.0))
  ax.bar(np.arange(len(kl_per_dim)), kl_per_dim)
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # Dimensions are whole.
  ax.set_xlabel("latent dimension")
  ax.set_ylabel("mean KL (nats)")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return figures.save_figure(fig, path)


def save_labelled_rows(path: str, rows: Sequence[tuple[str, np.ndarray]],
                       title: str | None = None) -> str:
  """One row of [0, 1] NHWC images per (label, images) pair, labels on the left.

  Shorter rows are padded with white on the right.
  """
  ncols = max(len(images) for _, images in rows)
  fig, axes = plt.subplots(len(rows), 1, figsize=(0.75 * ncols + 1.6, 0.85 * len(rows) + 0.5),
                           squeeze=False)
  for ax, (label, images) in zip(axes[:, 0], rows):
    images = np.asarray(images, np.float32)
    if len(images) < ncols:
      images = np.concatenate([images, np.ones((ncols - len(images),) + images.shape[1:],
                                               np.float32)])
    _show(ax, figures.image_grid(images, ncols))
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return figures.save_figure(fig, path)


def save_grid_with_column_titles(path: str, grid: np.ndarray, titles: Sequence[str],
                                 title: str | None = None) -> str:
  """Saves a row-by-row grid with one title per column; returns the path."""
  ncols = len(titles)
  tiled = figures.image_grid(grid, ncols)
  scale = 1.3
  fig, ax = plt.subplots(figsize=(ncols * scale,
                                  tiled.shape[0] / tiled.shape[1] * ncols * scale + 0.8))
  _show(ax, tiled)
  ax.axis("off")
  width = tiled.shape[1] / ncols
  for i, text in enumerate(titles):
    ax.text((i + 0.5) * width, -2, text, ha="center", va="bottom", fontsize=7, rotation=30)
  if title:
    ax.set_title(title, pad=28)
  return figures.save_figure(fig, path)
