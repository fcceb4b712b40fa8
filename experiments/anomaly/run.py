r"""Anomaly detection with a fully connected autoencoder and a conv VAE (one-class MNIST).

  python experiments/anomaly/run.py --workdir=runs/anomaly --quick
  python experiments/anomaly/run.py --workdir=runs/anomaly_full

One-class protocol (offline, mnist_5k): for each digit d, train on the training images
of d only (`configs/mnist_anomaly.py:digit=d`, i.e. configs/mnist_vae.py with
`data.include_labels=(d,)`) and score the whole test split (d = normal, other digits =
anomalies). Scores: reconstruction error (both models), negative ELBO and negative
IWAE-k (VAE). ROC AUC and PR AUC from scikit-learn with stratified bootstrap 95%
intervals, per digit and the mean. Every run's scores are exported as CSV `id,score`
(id = position in the test split). --quick: a few minutes per model on 2 CPU cores.

Image-folder protocol (e.g. faces): train on a folder of normal images and score a test
folder with a labels file `id,label` (1 = anomaly):

  python experiments/anomaly/run.py --workdir=runs/anomaly_faces \
      --normal_folder=/data/faces/train --test_folder=/data/faces/test \
      --labels=/data/faces/test_labels.csv \
      --folder_config=face_autoencoder:data=folder,hidden=1024,latent=256

The normal folder becomes the `image_folder` dataset (`data.image_folder`); test images
are prepared the same way (centre square crop, Lanczos resize) and scored; the scores go
to DIR/folder/scores_<method>.csv and the AUROCs into the report.

Runs train through `jaxgen.train.train_and_evaluate` (a rerun reuses finished runs and
their stored scores); the scores of `jaxgen.evaluation.anomaly` and `report.py` here
write DIR/figures and DIR/report.md.
"""

import os
import sys
import time

from absl import app
from absl import flags
import ml_collections
import numpy as np

# `python experiments/<study>/run.py` puts only this folder on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments import common  # noqa: E402  (first: it splits the CPU host before JAX starts)
import jax  # noqa: E402
from experiments.anomaly import report  # noqa: E402
from jaxgen import data as data_lib  # noqa: E402
from jaxgen.evaluation import anomaly  # noqa: E402
from jaxgen.evaluation import progress  # noqa: E402

MODEL_NAMES = {"ae": "FC autoencoder", "vae": "conv VAE"}


def score_run(result, config, run_dir: str, iwae_k: int, seed: int = 0) -> dict:
  """Scores of a finished one-class run on the whole test split (cached in scores.npz)."""
  path = os.path.join(run_dir, f"scores_iwae{iwae_k}.npz")
  if os.path.exists(path):
    with np.load(path) as cached:
      return {k: cached[k] for k in cached.files}
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.include_labels = None  # Score every test digit.
  scores = anomaly.anomaly_scores(
      result.objective, result.state, data_lib.make_eval_batches(data, split=data.eval_split),
      jax.random.PRNGKey(seed), iwae_k=iwae_k,
      num_batches=progress.num_eval_batches(data, data.eval_split))
  np.savez(path, **scores)
  return scores


def run_one_class(workdir: str, *, quick: bool, models=("ae", "vae"), digits=range(10),
                  iwae_k: int | None = None, num_bootstrap: int = 1000,
                  data_dir: str | None = None, extra_arg: str = "") -> dict:
  """Trains/reuses every (model, digit) run and returns {model: one_class_table}."""
  iwae_k = iwae_k or (20 if quick else 100)
  tables, timings = {}, {}
  total = len(models) * len(digits)
  for m, model in enumerate(models):
    per_digit = {}
    t0 = time.perf_counter()
    for i, digit in enumerate(digits):
      arg = f"digit={digit},model={model}" + (",quick" if quick else "") + extra_arg
      config = common.load_config(f"mnist_anomaly:{arg}")
      config.data.data_dir = data_dir
      run_dir = os.path.join(workdir, f"{model}_digit{digit}")
      result = common.train_or_reuse(
          config, run_dir, f"[{m * len(digits) + i + 1}/{total}] "
          f"{MODEL_NAMES.get(model, model)}, normal digit {digit}: "
          f"{config.train.num_steps} steps, then scores of the test split").result
      scores = score_run(result, config, run_dir, iwae_k, seed=config.seed)
      for method in anomaly.SCORES:
        if method in scores:
          anomaly.write_scores_csv(os.path.join(run_dir, f"scores_{method}.csv"),
                                   np.arange(len(scores[method])), scores[method])
      num_test = len(scores["label"])
      per_digit[int(digit)] = anomaly.evaluate_scores(
          scores, anomaly.one_class_targets(scores["label"], int(digit)), num_bootstrap)
    tables[MODEL_NAMES.get(model, model)] = anomaly.one_class_table(per_digit)
    timings[MODEL_NAMES.get(model, model)] = time.perf_counter() - t0
  return {"tables": tables, "timings": timings, "iwae_k": iwae_k, "num_test": num_test}


def run_image_folder(workdir: str, normal_folder: str, test_folder: str, labels: str | None,
                     folder_config: str, data_dir: str | None, iwae_k: int,
                     num_bootstrap: int) -> dict:
  """The image-folder protocol: train on `normal_folder`, score `test_folder`."""
  config = common.load_config(folder_config)
  config.data.name = "image_folder"
  config.data.image_folder = os.path.abspath(normal_folder)
  config.data.data_dir = data_dir
  run_dir = os.path.join(workdir, "folder")
  result = common.train_or_reuse(
      config, run_dir, f"image folder: training {config.model.name} on {normal_folder}").result
  out = anomaly.score_image_folder(
      result.objective, result.state, config.model.image_shape, test_folder, labels, jax.random.PRNGKey(config.seed), iwae_k=iwae_k,
      num_bootstrap=num_bootstrap)
  for method in anomaly.SCORES:
    if method in out["scores"]:
      anomaly.write_scores_csv(os.path.join(run_dir, f"scores_{method}.csv"), out["ids"],
                               out["scores"][method])
  return {"model": config.model.name, "num_test": len(out["ids"]), "metrics": out["metrics"]}


def write_report(workdir: str, one_class: dict, folder: dict | None, quick: bool,
                 total: float) -> str:
  """report.md: the per-digit AUROC table, the figure and the protocols."""
  tables = one_class["tables"]
  fig = report.save_auroc_plot(os.path.join(workdir, "figures", "auroc_per_digit.png"),
                                tables, "one-class MNIST: ROC AUC per normal digit")
  best = max(((m, k, v) for m, t in tables.items() for k, v in t["mean_auroc"].items()),
             key=lambda item: item[2])
  lines = [
      "# Anomaly detection: one-class MNIST", "",
      f"For each digit d a model is trained on the training images of d only and scores "
      f"all {one_class['num_test']} "
      f"test images (d = normal, other digits = anomalies; higher score = more anomalous). "
      f"Data: mnist_5k{' (--quick schedules)' if quick else ''}. Scores: reconstruction "
      f"error (sum of squared errors on [0, 1]), negative ELBO and negative "
      f"IWAE-{one_class['iwae_k']} (nats).", "",
      "## ROC AUC per normal digit (95% stratified bootstrap intervals)", "",
      report.auroc_markdown(tables), "",
      f"Best mean ROC AUC: {best[2]:.3f} ({best[0]}, {best[1]}).", "",
      "Mean PR AUC (anomalies positive; a random score gets the anomaly share, about 0.9):",
      "",
  ]
  lines += [f"- {m}: " + ", ".join(f"{k} {v:.3f}" for k, v in t["mean_auprc"].items())
            for m, t in tables.items()]
  lines += ["", f"![auroc per digit]({os.path.relpath(fig, workdir)})", "",
            "Per-example scores: `<model>_digit<d>/scores_<method>.csv` (`id,score`, id = "
            "position in the test split).", ""]
  if folder:
    lines += ["## Image-folder protocol", "",
              f"{folder['model']} trained on the normal folder, {folder['num_test']} test "
              f"images:", ""]
    lines += [f"- {k}: ROC AUC {v['auroc']:.3f} [{v['auroc_ci'][0]:.3f}, "
              f"{v['auroc_ci'][1]:.3f}], PR AUC {v['auprc']:.3f}"
              for k, v in folder["metrics"].items()]
    lines.append("")
  else:
    lines += ["## Image-folder protocol", "",
              "Not run here (it needs a folder of images). For faces: `--normal_folder=DIR "
              "--test_folder=DIR --labels=FILE` trains `--folder_config` (default the FC "
              "face autoencoder) on the normal folder and writes `folder/scores_<method>.csv` "
              "and the AUROCs; the labels file is a CSV `id,label` with label 1 for "
              "anomalies, id = the test image's path relative to the test folder.", ""]
  lines += ["## Timing", "", ", ".join(f"{k}: {v / 60:.1f} min" for k, v in
                                       one_class["timings"].items())
            + f"; whole study {total / 60:.1f} min (wall clock, this machine).", ""]
  return common.write_report(workdir, lines, {"one_class": one_class, "image_folder": folder})


def run_study(workdir: str, *, quick: bool, models=("ae", "vae"), digits=range(10),
              iwae_k: int | None = None, num_bootstrap: int = 1000,
              data_dir: str | None = None, folder_args: dict | None = None,
              extra_arg: str = "") -> str:
  """The whole study; returns the report's path."""
  workdir = os.path.abspath(workdir)
  start = time.perf_counter()
  one_class = run_one_class(workdir, quick=quick, models=models, digits=digits,
                            iwae_k=iwae_k, num_bootstrap=num_bootstrap, data_dir=data_dir,
                            extra_arg=extra_arg)
  folder = None
  if folder_args:
    folder = run_image_folder(workdir, data_dir=data_dir, iwae_k=one_class["iwae_k"],
                              num_bootstrap=num_bootstrap, **folder_args)
  path = write_report(workdir, one_class, folder, quick, time.perf_counter() - start)
  common.say(f"done in {(time.perf_counter() - start) / 60:.1f} min: {path}")
  return path


def _run(cfg) -> None:
  """The study from parsed flags."""
  folder_args = None
  if cfg.test_folder or cfg.normal_folder:
    if not (cfg.test_folder and cfg.normal_folder):
      raise app.UsageError("The image-folder protocol needs both --normal_folder and "
                           "--test_folder (and usually --labels).")
    folder_args = dict(normal_folder=cfg.normal_folder, test_folder=cfg.test_folder,
                       labels=cfg.labels, folder_config=cfg.folder_config)
  run_study(cfg.workdir, quick=cfg.quick, models=cfg.models,
            digits=[int(d) for d in cfg.digits], iwae_k=cfg.iwae_k,
            num_bootstrap=cfg.num_bootstrap, data_dir=cfg.data_dir, folder_args=folder_args)


def main():
  """Defines the flags (here, so tests can import this module) and runs."""
  common.define_study_flags("Short schedules (configs/mnist_anomaly.py:quick).")
  flags.DEFINE_list("models", ["ae", "vae"], "Models of configs/mnist_anomaly.py.")
  flags.DEFINE_list("digits", [str(d) for d in range(10)], "Normal digits, one run each.")
  flags.DEFINE_integer("iwae_k", None, "k of the IWAE score (default 100; 20 with --quick).")
  flags.DEFINE_integer("num_bootstrap", 1000, "Bootstrap resamples of the 95% intervals.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default: TFDS's).")
  flags.DEFINE_string("normal_folder", None, "Image-folder protocol: folder of normal images.")
  flags.DEFINE_string("test_folder", None, "Image-folder protocol: folder of test images.")
  flags.DEFINE_string("labels", None, "Image-folder protocol: CSV id,label (1 = anomaly).")
  flags.DEFINE_string("folder_config", "face_autoencoder:data=folder,hidden=1024,"
                      "latent=256", "Config of the image-folder model.")
  common.main(_run)


if __name__ == "__main__":
  main()
