"""What a reader relies on in a saved figure, checked as the figure is written.

The `figure_check` fixture (conftest.py) wraps `jaxgen.figures.save_figure`, the one
function every figure goes through, so the study tests check the figures they already
draw instead of drawing them again. For every saved figure:

- a title: a suptitle, or a title on every panel;
- panels that plot data (lines, scatter, bars, contours) show their axes, with an x and a
  y label each, and each label names its unit in parentheses unless it counts whole
  things (steps, dimensions, classes), whose ticks must then be whole numbers;
- images are drawn at `figures.MIN_PIXELS_PER_IMAGE_PIXEL` or more screen pixels per
  image pixel at the saved resolution (an image that is already a nearest-neighbour
  enlargement counts its source pixels). Image-only panels need no axis labels.
"""

import os
import re

import numpy as np

from jaxgen import figures
from jaxgen import workdir as workdir_lib

# Axes that count whole things: no unit, whole-number ticks ("bits per dimension" is a unit).
_COUNT_AXIS = re.compile(r"(?<!per )\b(step|epoch|dimension|index|class|digit)s?\b")
_UNIT = re.compile(r"\(.+\)")


def _title(ax) -> str:
  return " ".join(t for t in (ax.get_title(loc) for loc in ("left", "center", "right")) if t)


def _plots_data(ax) -> bool:
  return bool(ax.lines or ax.collections or ax.patches)


def _label_problems(axis_name: str, label: str, axis, lim, linear: bool,
                    needs_unit: bool) -> list[str]:
  """A missing label or unit, or fractional ticks on an axis that counts."""
  if not label.strip():
    return [f"no {axis_name} label"] if needs_unit else []
  counts = _COUNT_AXIS.search(label.lower())
  if needs_unit and not counts and not _UNIT.search(label):
    return [f"{axis_name} label {label!r} names no unit (write it in parentheses)"]
  low, high = sorted(lim)
  ticks = [t for t in axis.get_majorticklocs() if low <= t <= high]
  fractional = [f"{t:g}" for t in ticks if not float(t).is_integer()]
  if counts and linear and fractional:
    return [f"{axis_name} axis {label!r} counts whole things but has ticks at "
            f"{', '.join(fractional)}"]
  return []


def _axis_problems(ax) -> list[str]:
  """Labels, units and whole-number ticks of one panel's two axes."""
  data = _plots_data(ax)
  if data and not ax.axison:
    return ["plots data with its axes hidden"]
  return (_label_problems("x", ax.get_xlabel(), ax.xaxis, ax.get_xlim(),
                          ax.get_xscale() == "linear", data)
          + _label_problems("y", ax.get_ylabel(), ax.yaxis, ax.get_ylim(),
                            ax.get_yscale() == "linear", data))


def _block_size(array: np.ndarray, largest: int = 32) -> int:
  """The side of the constant square blocks `array` is made of (1 if none): an image
  enlarged with nearest-neighbour pixels is read as its source pixels."""
  h, w = array.shape[:2]
  for k in range(min(largest, h, w), 1, -1):
    if h % k == 0 and w % k == 0:
      source = array[::k, ::k]
      if np.array_equal(np.repeat(np.repeat(source, k, 0), k, 1), array):
        return k
  return 1


def _image_problems(ax, dpi: float) -> list[str]:
  """Images drawn at fewer screen pixels per image pixel than a reader needs."""
  out = []
  minimum = figures.MIN_PIXELS_PER_IMAGE_PIXEL
  for image in ax.images:
    array = np.asarray(image.get_array())
    k = _block_size(array)
    h, w = array.shape[0] // k, array.shape[1] // k
    box = image.get_window_extent()
    # The extent is in display pixels at the figure's dpi; the file was written at `dpi`.
    scale = dpi / ax.figure.dpi
    shown = min(abs(box.width) / w, abs(box.height) / h) * scale
    if shown < minimum - 1e-6:  # Figures sized to exactly the minimum pass.
      out.append(f"{h}x{w} image at {shown:.2f} screen pixels per image pixel "
                 f"(at least {minimum:g} needed)")
  return out


def problems(fig, dpi: float = figures.DPI) -> list[str]:
  """Everything a reader would miss in `fig`, which has been drawn (saved) at `dpi`."""
  panels = [ax for ax in fig.axes
            if ax.get_label() != "<colorbar>" and (ax.images or _plots_data(ax))]
  if not panels:
    return ["draws no image and no data"]
  out = []
  if not fig.get_suptitle() and not all(_title(ax) for ax in panels):
    out.append("no title: neither a suptitle nor a title on every panel")
  for i, ax in enumerate(panels):
    name = f"panel {i + 1} ({_title(ax)!r})" if _title(ax) else f"panel {i + 1}"
    out += [f"{name}: {p}" for p in _axis_problems(ax) + _image_problems(ax, dpi)]
  return out


def figures_under(root: str) -> list[str]:
  """Every PNG in a figures/ folder below `root` (other PNGs are data, e.g. image folders)."""
  return sorted(os.path.join(d, f) for d, _, files in os.walk(root)
                if os.path.basename(d) == workdir_lib.FIGURES_DIR
                for f in files if f.endswith(".png"))


def _short(path: str) -> str:
  """run/figures/name.png: enough of a path to tell the runs of a study apart."""
  return os.path.join(*path.split(os.sep)[-3:])


class FigureChecker:
  """Checks each figure saved through the wrapped save function; reports them together."""

  def __init__(self):
    self.checked: dict[str, list[str]] = {}  # Real path -> its problems.

  def wrap(self, save):
    """`save(fig, path)` that also checks the figure once it is drawn."""
    def checked_save(fig, path):
      written = save(fig, path)
      self.checked[os.path.realpath(path)] = problems(fig)
      return written
    return checked_save

  def assert_readable(self, paths: list[str]) -> None:
    """Every one of `paths` was checked and passed, as did every other checked figure."""
    if not paths:
      raise AssertionError("No figure to check: the test saved none.")
    unchecked = [p for p in paths if os.path.realpath(p) not in self.checked]
    lines = [f"{_short(p)}: written without jaxgen.figures.save_figure, so not checked"
             for p in unchecked]
    lines += [f"{_short(path)}: {problem}" for path, found in
              sorted(self.checked.items()) for problem in found]
    if lines:
      raise AssertionError(f"{len(lines)} figure problem(s) ({len(self.checked)} figures "
                           "checked):\n  " + "\n  ".join(lines))

  def assert_readable_under(self, root: str) -> None:
    """`assert_readable` over every figure the test wrote below `root`."""
    self.assert_readable(figures_under(root))
