"""experiments/celeba_gans/run.py in quick mode with the tiny configs, and its analyses."""

import importlib.util
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import REPO

sys.path.insert(0, REPO)  # The study's modules are imported from the repository root.
from experiments.celeba_gans import gan_analysis  # noqa: E402


def _load_study():
  path = os.path.join(REPO, "experiments", "celeba_gans", "run.py")
  spec = importlib.util.spec_from_file_location("celeba_gans_run", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class _FakeClassifier:
  """Labels an image by its mean brightness decile: a classifier with a known answer."""
  num_classes = 10

  def to_input_range(self, x):
    return x

  def logits(self, state, x):
    del state
    level = jnp.clip((x.mean(axis=(1, 2, 3)) * 10).astype(jnp.int32), 0, 9)
    return jax.nn.one_hot(level, 10) * 10.0


class _FakeGAN:
  """'Generates' images whose brightness is set by the class or code: (v + 0.5) / 10."""

  def __init__(self, num_classes=0, num_codes=0, scramble=None):
    self.model = type("M", (), dict(num_classes=num_classes, num_categorical_codes=num_codes,
                                    categorical_dim=10, noise_dim=2))()
    self.scramble = np.arange(10) if scramble is None else np.asarray(scramble)

  def draw_conditioning(self, rng, num, labels=None):
    codes = jax.random.randint(rng, (num, self.model.num_categorical_codes), 0, 10)
    return {"noise": jnp.zeros((num, 2)), "labels": labels, "codes": codes,
            "continuous": None}

  def generate(self, state, noise, labels=None, codes=None, continuous=None):
    del state, noise, continuous
    value = labels if labels is not None else codes[:, 0]
    value = jnp.asarray(self.scramble)[value]
    return jnp.broadcast_to(((value + 0.5) / 10.0)[:, None, None, None], (len(value), 4, 4, 1))


def test_conditioned_class_accuracy_and_purity_on_known_answers():
  rng = jax.random.PRNGKey(0)
  clf = _FakeClassifier()
  perfect = gan_analysis.conditioned_class_accuracy(_FakeGAN(num_classes=10), None, clf, None,
                                                    rng, num_per_class=3)
  assert perfect["accuracy"] == 1.0 and perfect["num_images"] == 30
  np.testing.assert_array_equal(perfect["confusion"], 3 * np.eye(10))
  # Classes 0 and 1 drawn as 1 and 0: those two are always wrong.
  swapped = gan_analysis.conditioned_class_accuracy(
      _FakeGAN(num_classes=10, scramble=[1, 0, 2, 3, 4, 5, 6, 7, 8, 9]), None, clf, None, rng,
      num_per_class=3)
  assert swapped["accuracy"] == pytest.approx(0.8)
  np.testing.assert_array_equal(swapped["per_class"], [0, 0] + [1] * 8)

  # A permuted code is pure (each value one digit); merged values are not.
  permuted = gan_analysis.code_purity(_FakeGAN(num_codes=1, scramble=np.arange(10)[::-1]),
                                      None, clf, None, rng, num_per_value=4)
  assert permuted["purity"] == 1.0 and permuted["matched_accuracy"] == 1.0
  assert permuted["distinct_majorities"] == 10
  merged = gan_analysis.code_purity(_FakeGAN(num_codes=1, scramble=[0] * 5 + [9] * 5),
                                    None, clf, None, rng, num_per_value=4)
  assert merged["purity"] == 1.0 and merged["distinct_majorities"] == 2
  assert merged["matched_accuracy"] == pytest.approx(0.2)  # Only 2 values map one-to-one.
  coverage = gan_analysis.predicted_class_distribution(_FakeGAN(num_codes=1), None, clf, None,
                                                       rng, num_images=2000)
  assert coverage["entropy_nats"] == pytest.approx(math.log(10), abs=0.01)
  with pytest.raises(ValueError, match="class-conditional"):
    gan_analysis.conditioned_class_accuracy(_FakeGAN(num_codes=1), None, clf, None, rng)
  with pytest.raises(ValueError, match=r"code_index=1.*1 categorical code"):
    gan_analysis.code_purity(_FakeGAN(num_codes=1), None, clf, None, rng, code_index=1)


def test_quick_study_smoke_writes_report_and_figures(data_dir, tmp_path, figure_check):
  study = _load_study()
  workdir = tmp_path / "study"
  path = study.run_study(str(workdir), quick=True, smoke=True, data_dir=data_dir)
  report = open(path).read()
  for text in ("test accuracy", "AC-GAN conditioned-class accuracy", "InfoGAN code purity",
               "mnist_infogan/figures/code_rows.png", "mnist_acgan/figures/class_grid.png",
               "figures/acgan_confusion.png"):
    assert text in report, text
  for name in ("acgan_confusion.png", "infogan_code_vs_label.png"):
    assert os.path.getsize(workdir / "figures" / name) > 1000
  for run, figure in (("mnist_infogan", "code_rows.png"), ("mnist_infogan", "continuous_rows.png"),
                      ("mnist_classifier", "samples.png"), ("mnist_dcgan", "samples.png")):
    assert os.path.getsize(workdir / run / "figures" / figure) > 1000, (run, figure)
  figure_check.assert_readable_under(str(workdir))
