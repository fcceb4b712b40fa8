"""Matplotlib figures: image grids, reconstructions, learning curves (PNG, headless)."""

import io
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Headless: runs on servers and in tests.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import paths  # noqa: E402
from jaxgen import workdir as workdir_lib  # noqa: E402

DPI = 100  # Resolution of every saved PNG.
# Screen pixels per image pixel that image figures guarantee at DPI. Below 1, pixels are
# dropped; below 2, nearest-neighbour drawing makes neighbouring pixels unequal in width,
# which hides the one-pixel patterns (checkerboards, thin strokes) the studies discuss.
# At 2 or more every pixel is a visible block, e.g. a 28-pixel digit is 56 or more wide.
MIN_PIXELS_PER_IMAGE_PIXEL = 2.0
# No image is enlarged past this many inches (a 4096-pixel covariance matrix would make a
# 67-megapixel PNG); such an image fails the readability test instead.
MAX_IMAGE_INCHES = 24.0


def image_grid(images: np.ndarray, ncols: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
  """Tiles NHWC images in [0, 1] into one (H, W, C) image, row by row.

  Args:
    images: (N, H, W, C) array.
    ncols: images per row.
    pad: pixels between images.
    pad_value: colour of the padding.

  Returns:
    The grid as a float array.
  """
  images = np.asarray(images, dtype=np.float32)
  if images.ndim != 4:
    raise ValueError(f"image_grid expects NHWC images, got shape {images.shape}.")
  n, h, w, c = images.shape
  nrows = -(-n // ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, ncols)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    grid[y:y + h, x:x + w] = image
  return np.clip(grid, 0.0, 1.0)


def _show(ax, grid: np.ndarray) -> None:
  if grid.shape[-1] == 1:
    ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  else:
    ax.imshow(grid, interpolation="nearest")
  ax.axis("off")


def save_figure(fig, path: str) -> str:
  """Writes `fig` as a PNG at `path` (local or remote, never half-written) and closes it."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
  plt.close(fig)
  paths.write_atomically(path, buffer.getvalue())
  return path


_save = save_figure


def pixel_inches(shape: Sequence[int], long_side: float = 8.0) -> float:
  """Inches per pixel that draw an (H, W, ...) image `long_side` inches on its long side,
  or larger so each pixel gets MIN_PIXELS_PER_IMAGE_PIXEL screen pixels, up to
  MAX_IMAGE_INCHES."""
  pixels = max(shape[:2])
  scale = max(long_side / pixels, MIN_PIXELS_PER_IMAGE_PIXEL / DPI)
  return min(scale, max(MAX_IMAGE_INCHES, long_side) / pixels)


def image_row(grids: Sequence[np.ndarray], titles: Sequence[str | None] | None = None,
              title: str | None = None, long_side: float = 8.0, head: float | None = None,
              gap: float = 0.2):
  """A figure of [0, 1] (H, W, C) grids side by side, all at one `pixel_inches` scale.

  The axes are placed in inches, so no layout step can shrink the images below the
  scale; `head` inches above the images (0.35 when there are panel titles) hold the
  panel titles, and a suptitle `title` sits above them.

  Returns:
    (figure, list of axes).
  """
  titles = list(titles or [None] * len(grids))
  height = max(g.shape[0] for g in grids)
  width = sum(g.shape[1] for g in grids)
  scale = pixel_inches((height, width), long_side)
  top = head if head is not None else 0.35 if any(titles) else 0.0
  fig_w = width * scale + gap * (len(grids) - 1)
  fig_h = height * scale + top + (0.45 if title else 0.0)
  fig = plt.figure(figsize=(fig_w, fig_h))
  axes, left = [], 0.0
  for grid, panel_title in zip(grids, titles):
    w, h = grid.shape[1] * scale, grid.shape[0] * scale
    ax = fig.add_axes((left / fig_w, (height * scale - h) / fig_h, w / fig_w, h / fig_h))
    _show(ax, grid)
    if panel_title:
      ax.set_title(panel_title, fontsize=10)
    axes.append(ax)
    left += w + gap
  if title:
    fig.suptitle(title, y=1.0 - 0.1 / fig_h, va="top")
  return fig, axes


def save_image_grid(path: str, images: np.ndarray, ncols: int = 8,
                    title: str | None = None) -> str:
  """Saves NHWC images in [0, 1] as one grid PNG; returns the path."""
  fig, _ = image_row([image_grid(images, ncols)], [title])
  return save_figure(fig, path)


def save_reconstructions(path: str, originals: np.ndarray, reconstructions: np.ndarray,
                         ncols: int = 8, title: str | None = None) -> str:
  """Saves originals and their reconstructions in alternating rows (original above)."""
  originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
  rows = []
  for start in range(0, len(originals), ncols):
    rows += [originals[start:start + ncols], reconstructions[start:start + ncols]]
  # Pad a short last pair of rows so the grid stays aligned.
  rows = [np.concatenate([r, np.ones((ncols - len(r),) + r.shape[1:], r.dtype)]) for r in rows]
  return save_image_grid(path, np.concatenate(rows), ncols,
                         title or "rows: original (top) / reconstruction (below)")


def metric_unit(metric: str) -> str:
  """The unit a logged metric is in, from jaxgen's naming conventions (axis labels)."""
  name = metric.split("/")[0]
  if name.endswith("nats"):
    return "nats"
  if name == "bits_per_dim":
    return "bits per dimension"
  if "acc" in name or name == "accuracy":
    return "fraction"
  if "prob" in name:
    return "probability"
  if name == "grad_norm":
    return "global L2 norm"
  if name == "mse":
    return "data units squared"
  return "objective units, see report.md"


def whole_number_ticks(axis) -> None:
  """Ticks only at whole numbers on a matplotlib axis that counts (steps, dimensions).

  min_n_ticks=1: with the default of 2, a range holding one whole number (one logged
  step) falls back to fractional ticks.
  """
  axis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))


def save_learning_curves(path: str, records: Sequence[Mapping[str, Any]],
                         metrics: Iterable[str], title: str | None = None) -> str:
  """Plots train/<m> and eval/<m> against step, one panel per metric `m`."""
  metrics = [m for m in metrics
             if any(f"{split}/{m}" in r for r in records for split in ("train", "eval"))]
  if not metrics:
    raise ValueError("No metrics to plot: metrics.jsonl has none of the requested names.")
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for split, style in (("train", "-"), ("eval", "o-")):
      steps, values = workdir_lib.metric_series(records, f"{split}/{metric}")
      if len(steps):
        ax.plot(steps, values, style, label=split, markersize=3)
    ax.set_xlabel("training step")
    whole_number_ticks(ax.xaxis)
    ax.set_ylabel(f"{metric} ({metric_unit(metric)})")
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return save_figure(fig, path)
