"""`jaxgen.evaluate` on real workdirs, its errors, and the studies' analysis code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxgen import evaluate
from jaxgen import objectives
from jaxgen import train
from jaxgen.evaluation import feature_net
from jaxgen.evaluation import likelihood
from jaxgen.evaluation import runs
from helpers import REPO
from helpers import load_config


@pytest.fixture(scope="module")
def vae_workdir(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("eval") / "vae")
  config = load_config("mnist_vae", "smoke,model=mlp")  # Compiles fastest.
  config.data.data_dir = data_dir
  train.train_and_evaluate(config, workdir)
  return workdir


def test_evaluate_writes_eval_json_with_bounds_samples_and_latents(vae_workdir, data_dir,
                                                                   figure_check):
  results = evaluate.evaluate_workdir(vae_workdir, "test", iwae_k=(20,), max_examples=64,
                                      num_samples=100, feature_net_smoke=True)
  assert results["metrics"] == ["likelihood", "samples", "latents"]
  stored = json.load(open(os.path.join(vae_workdir, "eval.json")))["test"]
  assert stored["step"] == 6
  bounds = stored["likelihood"]["bounds"]
  assert bounds["elbo_nats"]["num_examples"] == 64
  assert bounds["iwae_20_nats"]["nats"] > bounds["elbo_nats"]["nats"]
  assert bounds["elbo_nats"]["nats_stderr"] > 0
  assert "bits_per_dim" not in bounds["elbo_nats"]  # Bernoulli of grey levels: no likelihood.
  samples = stored["samples"]
  assert samples["feature_net"].startswith("mnist_5k-28x28x1-unit-cnn-")
  assert (samples["num_real"], samples["num_generated"], samples["preprocessing"]) == (500, 100, "unit")
  assert samples["fid"] > 0 and 0 <= samples["precision"] <= 1
  low, high = samples["fid_interval"]
  assert low <= samples["fid"] <= high and samples["fid_resamples"] == 100
  fid_line = next(line for line in evaluate.summary_lines(results) if "FID" in line)
  assert (f"FID {samples['fid']:.3f} (95% bootstrap interval {low:.3f}-{high:.3f}; "
          f"100 generated vs 500 real), KID x 1e3") in fid_line
  assert stored["latents"]["latent_dim"] == 2 and "knn_accuracy" in stored["latents"]
  for name in stored["latents"]["figures"].values():
    assert os.path.getsize(os.path.join(vae_workdir, name)) > 1000
  figure_check.assert_readable([os.path.join(vae_workdir, name)
                                for name in stored["latents"]["figures"].values()])
  # A second split adds to eval.json instead of replacing it; the feature net is reused.
  evaluate.evaluate_workdir(vae_workdir, "train", metrics=["likelihood"], iwae_k=(),
                            max_examples=16)
  assert set(json.load(open(os.path.join(vae_workdir, "eval.json")))) == {"test", "train"}


def test_feature_net_with_a_changed_checkpoint_is_refused(data_dir, tmp_path):
  import shutil
  config = load_config("mnist_vae", "smoke")
  config.data.data_dir = data_dir
  feature_net.get_feature_net(config.data, smoke=True)  # Trained once per session.
  # Tamper with a private copy: other tests keep using the session's network.
  config.data.data_dir = str(shutil.copytree(data_dir, tmp_path / "tfds"))
  net = feature_net.get_feature_net(config.data, smoke=True, train_if_missing=False)
  real = net.reference_features(config.data, "test")
  assert real["features"].shape == (500, 16) and real["num_examples"] == 500
  np.testing.assert_allclose(real["probs"].sum(axis=1), 1.0, rtol=1e-5)
  checkpoint = os.path.join(net.directory, net.manifest["checkpoint"])
  victim = next(os.path.join(root, f) for root, _, files in os.walk(checkpoint) for f in files)
  with open(victim, "ab") as f:
    f.write(b"tampered")
  with pytest.raises(feature_net.FeatureNetChecksumError, match=r"sha256.*changed or corrupted"):
    feature_net.get_feature_net(config.data, smoke=True)


def test_evaluate_without_a_checkpoint_is_a_clear_error(data_dir, tmp_path):
  from jaxgen import workdir as workdir_lib
  with pytest.raises(runs.NoCheckpointError, match="no config.json"):
    evaluate.evaluate_workdir(str(tmp_path))
  fresh = tmp_path / "fresh"
  config = load_config("mnist_vae", "smoke,model=mlp")
  config.data.data_dir = data_dir
  workdir_lib.write_or_check_config(str(fresh), config)  # A run that never checkpointed.
  with pytest.raises(runs.NoCheckpointError, match="has no checkpoint to evaluate"):
    evaluate.evaluate_workdir(str(fresh))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run([sys.executable, "-m", "jaxgen.evaluate", f"--workdir={fresh}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0 and "has no checkpoint to evaluate" in out.stderr


def test_likelihood_of_a_gan_is_a_clear_error(tmp_path):
  gan = objectives.get_objective(load_config("mnist_dcgan", "smoke"))
  with pytest.raises(likelihood.NoLikelihoodError, match="GANs define no likelihood"):
    likelihood.make_bounds_fn(gan)
  assert evaluate.default_metrics(gan) == ("samples",)
  with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['fid'\]"):
    evaluate.evaluate_workdir(str(tmp_path), metrics=["fid"])


# ------------------------------------------------------------------ data.include_labels
def test_include_labels_filters_the_training_split_only(data_dir):
  import tensorflow as tf
  from jaxgen import data as data_lib
  from jaxgen.data import input_pipeline
  config = load_config("mnist_anomaly", "smoke,digit=3")
  config.data.data_dir = data_dir
  batch = next(data_lib.make_train_iterator(config.data, seed=0))
  assert set(batch["label"].tolist()) == {3}
  def count(split):
    return sum(int(b["mask"].sum()) for b in data_lib.make_eval_batches(config.data, split=split))
  assert count("train") == 450 and count("test") == 500
  unlabelled = tf.data.Dataset.from_tensor_slices({"image": np.zeros((2, 4, 4, 1), np.float32)})
  with pytest.raises(ValueError, match=r"data.include_labels=\(3,\) needs labels"):
    input_pipeline._include_labels(unlabelled, config.data, "train")


# ------------------------------------------------------------------ studies
def _load_script(name):
  import importlib.util
  spec = importlib.util.spec_from_file_location(f"{name}_run",
                                                os.path.join(REPO, "experiments", name, "run.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_kl_ablation_study_writes_its_report(data_dir, tmp_path, figure_check):
  study = _load_script("kl_ablation")
  config = load_config("kl_ablation", "smoke")
  config.data.data_dir = data_dir
  config.model.hidden_sizes = (32,)
  config.objective.sweep_values = (1.0, 100.0)  # Two copies keep the test short.
  config.train.num_steps = 3
  path = study.run_study(str(tmp_path), config, quick=False, latent_sizes=(3,), iwae_k=5,
                         feature_net_smoke=True)
  report = open(path).read()
  for tag in ("beta=1", "beta=100"):
    assert f"| latent 3 | {tag} |" in report
  # Each FID with its bootstrap interval in the table, and the counts in the text.
  samples = json.load(open(tmp_path / "results.json"))["runs"]["latent 3"]["beta=1"]["samples"]
  low, high = samples["fid_interval"]
  assert f"| {samples['fid']:.2f} ({low:.2f}-{high:.2f}) |" in report
  assert "500 generated vs 500 real images; the FID's 95% interval is a bootstrap" in report
  assert "What the KL weight does" in report and "With weight 100 the KL" in report
  for name in ("neg_elbo_curves", "reconstructions", "prior_samples", "interpolations",
               "rate_distortion"):
    assert os.path.getsize(tmp_path / "figures" / f"{name}.png") > 1000, name
  figure_check.assert_readable_under(str(tmp_path))
  # Reconstructions were kept at the points in training (1/10, 1/3 and all of 3 steps).
  assert sorted(os.listdir(tmp_path / "latent_3" / "snapshots")) == [
      f"reconstructions_step_{s}.npy" for s in (1, 3)]
  results = json.load(open(tmp_path / "results.json"))["runs"]["latent 3"]
  bounds = results["beta=1"]["likelihood"]["bounds"]
  assert bounds["iwae_5_nats"]["nats"] > bounds["elbo_nats"]["nats"]


def test_kl_ablation_explanation_quotes_each_fid_with_its_interval_and_counts():
  kl = _load_script("kl_ablation").kl
  def copy(kl_nats, fid, interval):
    return {"latents": {"active_units": 2, "latent_dim": 3},
            "likelihood": {"bounds": {"elbo_nats": {"negative_nats": 100.0 + kl_nats},
                                      "kl_nats": {"nats": kl_nats}, "nll_nats": {"nats": 100.0}}},
            "samples": {"fid": fid, "fid_interval": interval, "fid_confidence": 0.95,
                        "num_generated": 1000, "num_real": 500}}
  results = {"latent 3": {"beta=0": copy(9.0, 30.0, [28.0, 32.5]),
                          "beta=1": copy(3.0, 12.34, [11.81, 12.94])}}
  text = kl.explain(results, ["beta=0", "beta=1"], [0.0, 1.0])[0]
  assert ("Prior samples show the price: FID 30.0 (95% bootstrap interval 28.0-32.5; 1,000 "
          "generated vs 500 real) at weight 0 against FID 12.3 (95% bootstrap interval "
          "11.8-12.9; 1,000 generated vs 500 real) at weight 1") in text


def test_anomaly_study_scores_exports_and_reports(data_dir, tmp_path, figure_check):
  study = _load_script("anomaly")
  path = study.run_study(str(tmp_path), quick=False, models=("ae",), digits=(1,),
                         num_bootstrap=50, data_dir=data_dir, extra_arg=",smoke")
  report = open(path).read()
  assert "| 1 | 0." in report and "FC autoencoder: reconstruction_error" in report
  rows = open(tmp_path / "ae_digit1" / "scores_reconstruction_error.csv").read().splitlines()
  assert rows[0] == "id,score" and len(rows) == 501
  result = json.load(open(tmp_path / "results.json"))["one_class"]["tables"]["FC autoencoder"]
  auroc = result["per_class"]["1"]["reconstruction_error"]
  assert auroc["num_normal"] == 50 and auroc["num_anomalous"] == 450
  assert auroc["auroc_ci"][0] <= auroc["auroc"] <= auroc["auroc_ci"][1]
  figure_check.assert_readable_under(str(tmp_path))


def test_image_folder_protocol_scores_a_labelled_folder(vae_workdir, data_dir, tmp_path):
  from PIL import Image
  from jaxgen.evaluation import anomaly
  run = runs.restore_run(vae_workdir)
  rng = np.random.default_rng(0)
  folder = tmp_path / "test"
  folder.mkdir()
  lines = ["id,label"]
  for i in range(6):
    # Normal: dark images like MNIST; anomalies: bright noise.
    pixels = (rng.uniform(size=(32, 32)) * (255 if i % 2 else 30)).astype(np.uint8)
    Image.fromarray(pixels).save(folder / f"img{i}.png")
    lines.append(f"img{i}.png,{i % 2}")
  (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
  out = anomaly.score_image_folder(run.objective, run.state, (28, 28, 1), str(folder),
                                   str(tmp_path / "labels.csv"), jax_key(), iwae_k=3,
                                   batch_size=4, num_bootstrap=20)
  assert out["ids"] == [f"img{i}.png" for i in range(6)]
  assert list(out["is_anomaly"]) == [0, 1, 0, 1, 0, 1]
  assert out["metrics"]["reconstruction_error"]["auroc"] == 1.0
  (tmp_path / "labels.csv").write_text("id,label\nimg0.png,0\n")
  with pytest.raises(ValueError, match=r"5 test image\(s\) have no label"):
    anomaly.score_image_folder(run.objective, run.state, (28, 28, 1), str(folder),
                               str(tmp_path / "labels.csv"), jax_key())


def jax_key():
  import jax
  return jax.random.PRNGKey(0)
