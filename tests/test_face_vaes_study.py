"""experiments/face_vaes/run.py end to end on tiny configs, offline."""

import importlib.util
import json
import os

import numpy as np
import pytest
import scipy.io

from helpers import REPO
from jaxgen.data import builder_utils
from jaxgen.data import frey_faces

pytestmark = pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")


def _study():
  path = os.path.join(REPO, "experiments", "face_vaes", "run.py")
  spec = importlib.util.spec_from_file_location("face_vaes_run", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_quick_study_runs_on_stand_ins_and_says_what_it_skipped(tmp_path, figure_check):
  workdir, data_dir = tmp_path / "study", tmp_path / "tfds"
  path = _study().run(str(workdir), quick=True, data_dir=str(data_dir), smoke=True)
  report = open(path).read()
  # No Frey, CelebA or CIFAR-10 here: each is named as missing, stand-ins are labelled.
  assert report.count("ran on a STAND-IN") == 3 and "NOT faces" in report
  assert "frey_rawface.mat" in report and "'celeb_a' is not prepared" in report
  assert "| ResNet VAE on CIFAR-10 (training) | skipped: Dataset 'cifar10' is not" in report
  assert not data_dir.exists()  # Probing for data wrote (and downloaded) nothing.
  for name in ("frey_reconstructions", "frey_samples", "frey_latent_traversal",
               "face_vae_samples", "face_vae_tsne", "autoencoder_latent_edits"):
    assert os.path.getsize(workdir / "figures" / f"{name}.png") > 1000, name
    assert f"figures/{name}.png" in report
  assert "celeba_vae/figures/learning_curves.png" in report
  numbers = json.load(open(workdir / "numbers.json"))
  frey = next(v for k, v in numbers.items() if k.startswith("Frey"))
  # The reference decoders: a VAE trained a few smoke steps is no better than a mean face.
  assert frey["test/perfect_reconstruction_nll_nats"] < frey["test/mean_image_nll_nats"]
  assert frey["test/gap_to_mean_image_nats"] == pytest.approx(
      frey["test/mean_image_nll_nats"] + frey["test/elbo_nats"])
  assert "nats below the mean image**" in report and "**Warning**: the VAE beats" in report
  vae = numbers["CelebA-64 all-conv VAE (pixel-mean MSE + lambda * KL)"]
  assert 0.0 <= vae["probe/probe_accuracy"] <= 1.0
  assert np.isfinite(vae["test/mse"]) and np.isfinite(vae["test/kl_nats"])
  # The CelebA VAE against the mean face (MSE, no likelihood): [-1, 1] pixels, so the mean
  # image's MSE (their variance about the training mean) lies in (0, 4).
  assert 0.0 < vae["test/mean_image_mse"] < 4.0 and vae["test/perfect_reconstruction_mse"] == 0
  assert vae["test/mse_ratio_to_mean_image"] == pytest.approx(
      vae["test/mse"] / vae["test/mean_image_mse"])
  assert "| training mean image, for every face | " in report
  assert f"test MSE is **{vae['test/mse_ratio_to_mean_image']:.3f} of the mean" in report
  assert "**Warning**: the VAE's test MSE is less than 10% below the mean image's" in report
  ae = numbers["Fully connected autoencoder with latent edits"]
  assert ae["edit/max_diff_a0_vs_reconstruction"] == 0.0
  assert ae["edit/max_spread_a1_over_inputs"] < 1e-5
  speed = numbers["speed"]
  assert speed["steps_per_sec"] > 0
  assert speed["seconds_per_epoch"] == pytest.approx(50_000 // 8 / speed["steps_per_sec"])
  assert "steps per CIFAR-10 epoch" in report
  figure_check.assert_readable_under(str(workdir))


def test_full_mode_skips_missing_datasets_without_stand_ins(tmp_path):
  path = _study().run(str(tmp_path / "study"), quick=False, data_dir=str(tmp_path / "tfds"),
                      smoke=True, measure_speed=False)
  report = open(path).read()
  assert report.count("| skipped: ") == 4 and "STAND-IN" not in report
  assert "frey_rawface.mat" in report and "'cifar10' is not prepared" in report
  assert not (tmp_path / "study" / "frey_vae").exists()


def test_prepared_frey_is_used_instead_of_a_stand_in(tmp_path, monkeypatch):
  manual = tmp_path / "manual"
  manual.mkdir()
  path = str(manual / frey_faces.FILE_NAME)
  scipy.io.savemat(path, {"ff": np.zeros((560, 20), np.uint8)})
  monkeypatch.setattr(frey_faces, "MD5", builder_utils.file_md5(path))
  config, source = _study().frey_source("smoke", True, True, str(tmp_path / "study"),
                                        str(tmp_path / "tfds"), str(manual))
  assert source.label == "frey_faces" and not source.stand_in and source.skipped is None
  assert tuple(config.model.image_shape) == (28, 20, 1)
