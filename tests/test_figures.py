"""What a reader relies on in the loop's and the evaluators' figures: labelled axes with
units, titles that say what is drawn, whole-number ticks where the axis counts things."""

import sys

import numpy as np
import pytest

from jaxgen import figures
from jaxgen.evaluation import plots
from helpers import REPO
from helpers import load_config

sys.path.insert(0, REPO)  # The study's modules are imported from the repository root.
from experiments.mnist_vae_study import analysis as va  # noqa: E402


@pytest.fixture
def drawn(monkeypatch):
  """Keeps the matplotlib figure a save function would have written."""
  kept = []
  monkeypatch.setattr(figures, "save_figure", lambda fig, path: kept.append(fig) or path)
  return kept


def test_learning_curves_label_both_axes_with_units(drawn, tmp_path):
  records = [{"step": s, "train/loss": 1.0 / s, "train/kl_nats": 2.0, "eval/bits_per_dim": 0.3,
              "eval/d_acc_real": 0.5} for s in (10, 20)]
  figures.save_learning_curves(str(tmp_path / "c.png"), records,
                               ("loss", "kl_nats", "bits_per_dim", "d_acc_real", "absent"))
  axes = drawn[0].axes
  assert [a.get_title() for a in axes] == ["loss", "kl_nats", "bits_per_dim", "d_acc_real"]
  assert [a.get_ylabel() for a in axes] == [
      "loss (objective units, see report.md)", "kl_nats (nats)",
      "bits_per_dim (bits per dimension)", "d_acc_real (fraction)"]
  assert {a.get_xlabel() for a in axes} == {"training step"}


def test_kl_per_dimension_ticks_are_whole_dimensions(drawn, tmp_path):
  plots.save_kl_per_dim_plot(str(tmp_path / "kl.png"), [3.0, 0.1], "KL per dimension")
  ax = drawn[0].axes[0]
  drawn[0].canvas.draw()
  visible = [t for t in ax.get_xticks() if -0.5 <= t <= 1.5]
  assert visible and all(float(t).is_integer() for t in visible)
  assert ax.get_xlabel() == "latent dimension" and ax.get_ylabel() == "mean KL (nats)"


@pytest.mark.parametrize("spec, description", [
    ("mnist_vae:smoke", "decoder means of z ~ N(0, I)"),
    ("mnist_dcgan:smoke", "generator outputs G(z)"),
    ("celeba_dcgan:smoke", "generator outputs G(z), warmed-up EMA of G"),
    ("mnist_gaussian:smoke", "draws from the fitted Gaussian, clipped to the data range")])
def test_sample_figures_say_what_they_draw(spec, description):
  from jaxgen import objectives
  name, _, arg = spec.partition(":")
  assert objectives.get_objective(load_config(name, arg)).sample_description == description


def test_image_figures_stay_readable_at_full_scale(figure_check, tmp_path):
  """The smoke runs draw few, small images; the full studies draw these sizes."""
  rng = np.random.default_rng(0)
  faces, digits = rng.uniform(size=(64, 64, 64, 3)), rng.uniform(size=(400, 28, 28, 1))
  out = str(tmp_path / "figures")
  written = [
      figures.save_image_grid(f"{out}/samples.png", faces, 8, "64 CelebA-size samples"),
      # The Gaussian baseline's covariance of 28 x 28 digits: one 784 x 784 image (a smooth
      # ramp, which compresses faster than noise).
      figures.save_image_grid(f"{out}/covariance.png",
                              np.broadcast_to(np.linspace(0, 1, 784 * 784).reshape(
                                  1, 784, 784, 1), (1, 784, 784, 3)), 1, "covariance"),
      figures.save_reconstructions(f"{out}/reconstructions.png", faces[:32], faces[32:]),
      va.save_samples_and_reconstructions(f"{out}/three.png", digits[:16], digits[16:32],
                                          digits[32:48], title="model A"),
      va.save_latent_manifold(f"{out}/manifold.png", digits, 20),
      plots.save_labelled_rows(f"{out}/rows.png", [("faces", faces[:10]), ("more", faces[:4])],
                               "labelled rows"),
      plots.save_grid_with_column_titles(f"{out}/edits.png", faces, [f"c{i}" for i in range(8)],
                                         "edits"),
  ]
  figure_check.assert_readable(written)
