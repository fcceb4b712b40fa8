"""experiments/mnist_vae_study/run.py: one command trains, analyses and reports."""

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import REPO

SCRIPT = os.path.join(REPO, "experiments", "mnist_vae_study", "run.py")


@functools.cache
def _study():
  spec = importlib.util.spec_from_file_location("mnist_vae_study_run", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _data(data_dir):
  data = _study().data_fields()
  data.data_dir = data_dir
  return data


@pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")  # Model B's, on purpose.
def test_study_trains_analyses_and_reports(data_dir, tmp_path, figure_check):
  study = _study()
  path = study.run_study(str(tmp_path), quick=True, data=_data(data_dir), vaes=("A", "B"),
                         gaussians=study.GAUSSIANS[:1], steps={"A": 3, "B": 3},
                         density_vaes=("A",), init_vaes=(), iwae_k=5,
                         kl_samples=500, manifold_size=4)
  report = open(path).read()
  for row in ("| VAE A (latent 2) | 308,357 | 3 |", "| VAE B (latent 2) | 250,565 | 3 |",
              "| Gaussian, Ledoit-Wolf | uniform dequantization |",
              "| VAE A, discretized logistic | IWAE-5 |", "| VAE A, Bernoulli |",
              "| uniform over the 256 levels | exact | 8.000 |"):
    assert row in report, row
  # The grey-level Bernoulli VAEs report no bits/dim: it is no likelihood of the data.
  assert "| model | parameters | steps | test -ELBO, grey-level cross-entropy (nats) |" in report
  numbers = json.load(open(os.path.join(tmp_path, "results.json")))
  # The Gaussian's per-image NLLs average to what the training loop's eval reported.
  gaussian = numbers["gaussians"]["gaussian_ledoit_wolf"]
  assert gaussian["density"]["nll_bits_per_dim"] == pytest.approx(gaussian["bits_per_dim"],
                                                                  rel=1e-5)
  for variant in ("8bit", "binarized"):
    vae = numbers["densities"][variant]["A"]
    # IWAE-5 is a tighter bound than the one-sample ELBO on average.
    assert vae["nll_nats"] < vae["elbo_nats"] and vae["nll_stderr_nats"] > 0, (variant, vae)
  assert "nll_bits_per_dim" in numbers["densities"]["8bit"]["A"]
  assert "**Checkerboard artifacts**: model B's score is" in report
  assert "| mean-image NLL (nats) | gap to mean image (nats) | perfect-recon. NLL (nats) |" in report
  # Three steps from initialisation cannot beat the mean image: the report says so.
  assert re.search(r"- \*\*Warning, model A\*\*: its test negative ELBO is (only [-\d.]+ nats "
                   r"below|[\d.]+ nats above) the mean image's NLL", report)
  assert "- model B: ConvTranspose kernel_size=3 is not divisible by stride=2" in report
  assert "- model A:" not in report
  # The first 0 and the first 9 of mnist_5k's class-sorted test split.
  assert "From test image 0 to test image 450" in report
  linked = [line.split("](")[1].rstrip(")") for line in report.splitlines()
            if line.startswith("![")]
  for figure in ("figures/reconstructions_side_by_side.png", "figures/interpolations.png",
                 "figures/checkerboard.png",
                 "figures/A_manifold.png", "figures/B_latents.png",
                 "figures/A_samples_and_reconstructions.png",
                 "gaussian_ledoit_wolf/figures/covariance.png",
                 "gaussian_ledoit_wolf/figures/samples_top_k.png"):
    assert figure in linked, figure
  for figure in linked:
    assert os.path.getsize(os.path.join(tmp_path, figure)) > 1000, figure
  figure_check.assert_readable_under(str(tmp_path))


def test_bad_interpolation_index_fails_before_training(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"--index_a=500 is out of range: the split has 500 "
                                       r"examples \(valid indices 0\.\.499\)"):
    _study().run_study(str(tmp_path / "study"), quick=True, data=_data(data_dir), index_a=500)
  assert not (tmp_path / "study").exists()


def test_full_mode_uses_the_paper_schedule_on_full_mnist():
  study = _study()
  config = study.make_config("mnist_vae:model=mlp,full", study.data_fields(), quick=False)
  assert (config.data.name, config.train.num_steps, config.data.batch_size) == (
      "mnist", 47_000, 128)  # 100 epochs of 60,000 digits.
  data = study.data_fields()
  data.name, data.data_dir = "fashion_mnist", "/somewhere"
  config = study.make_config("mnist_gaussian", data, quick=False)
  assert (config.data.name, config.data.data_dir) == ("fashion_mnist", "/somewhere")


def test_command_line_overrides_reach_the_runs(data_dir, tmp_path):
  out = subprocess.run(
      [sys.executable, SCRIPT, f"--workdir={tmp_path / 'study'}", "--quick",
       f"--config.data.data_dir={data_dir}", "--index_b=-1"],
      capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert out.returncode != 0
  assert "--index_b=-1 is out of range: the split has 500 examples" in out.stderr
  assert not (tmp_path / "study").exists()
