"""The figure checker itself (figure_checks.py): it fails bad figures and passes good ones."""

import numpy as np
import pytest

import figure_checks
from jaxgen import figures

plt = figures.plt


def _save(tmp_path, fig, name="f.png"):
  return figures.save_figure(fig, str(tmp_path / name))


def test_a_bad_figure_fails_with_every_problem_named(figure_check, tmp_path):
  fig, (curve, image) = plt.subplots(1, 2, figsize=(8, 1.2))
  curve.plot([1, 2], [3.0, 2.0])  # No y label, no title.
  curve.set_xlabel("step")  # Counts steps, but the default ticks fall between them.
  image.imshow(np.random.default_rng(0).uniform(size=(64, 64)), cmap="gray")
  path = _save(tmp_path, fig, "bad.png")
  with pytest.raises(AssertionError) as failure:
    figure_check.assert_readable([path])
  message = str(failure.value)
  for problem in ("bad.png: no title", "panel 1: no y label",
                  "panel 1: x axis 'step' counts whole things but has ticks at 1.2",
                  "panel 2: 64x64 image at 1.4", "(at least 2 needed)"):
    assert problem in message, problem


def test_a_good_figure_passes(figure_check, tmp_path):
  fig, (curve, image) = plt.subplots(1, 2, figsize=(8, 3.5))
  curve.plot([3], [1.0], "o")  # One logged step, as in a smoke run: still whole ticks.
  curve.set_xlabel("training step")
  curve.set_ylabel("loss (nats)")
  figures.whole_number_ticks(curve.xaxis)
  # 28 pixels over ~3 inches at 100 dpi: about 10 screen pixels per image pixel.
  image.imshow(np.random.default_rng(0).uniform(size=(28, 28)), cmap="gray")
  image.axis("off")  # Image-only panels need no axis labels.
  fig.suptitle("a curve and an image")
  figure_check.assert_readable([_save(tmp_path, fig)])


def test_units_and_enlarged_images_are_read_as_a_reader_would():
  fig, (curve, image) = plt.subplots(1, 2, figsize=(6, 3))
  curve.plot([0.0, 1.0], [0.0, 1.0])
  curve.set_xlabel("rate")
  curve.set_ylabel("bits per dimension")  # A unit, not a count of dimensions.
  curve.set_title("no units")
  # 16 pixels enlarged 16 times: 256 array pixels, but the reader sees 16.
  image.imshow(np.kron(np.eye(16), np.ones((16, 16))), interpolation="nearest")
  image.set_title("enlarged")
  fig.set_size_inches(6, 0.3)
  fig.canvas.draw()
  found = figure_checks.problems(fig, dpi=fig.dpi)
  assert "panel 1 ('no units'): x label 'rate' names no unit (write it in parentheses)" in found
  assert any("'bits per dimension' names no unit" in p for p in found)
  assert any(p.startswith("panel 2 ('enlarged'): 16x16 image at") for p in found)


def test_a_figure_written_around_the_checker_or_none_at_all_fails(figure_check, tmp_path):
  (tmp_path / "figures").mkdir()
  stray = tmp_path / "figures" / "stray.png"
  fig, ax = plt.subplots()
  ax.imshow(np.zeros((4, 4)))
  fig.savefig(stray)  # Not through jaxgen.figures.save_figure.
  plt.close(fig)
  with pytest.raises(AssertionError, match="stray.png: written without"):
    figure_check.assert_readable_under(str(tmp_path))
  with pytest.raises(AssertionError, match="No figure to check"):
    figure_check.assert_readable_under(str(tmp_path / "empty"))
