r"""GANs on CelebA 64x64: DCGAN, AC-GAN on "Smiling", InfoGAN with ten 10-way codes.

  python experiments/celeba_gans/run.py --workdir=runs/celeba_gans --manual_dir=/data/celeba
  python experiments/celeba_gans/run.py --workdir=runs/celeba_gans_mnist --quick

Full mode trains configs/celeba_{dcgan,acgan,infogan}.py (CelebA files in --manual_dir,
see the README's Data section; --source=catalog for the TFDS celeb_a files). --quick runs
the MNIST versions offline on mnist_5k and judges them with a CNN classifier trained by
jaxgen on the real labels (configs/mnist_classifier.py):
  * AC-GAN: how often the classifier names the class a digit was conditioned on;
  * InfoGAN: purity of the categorical code against the classifier's labels;
  * DCGAN: the classifier's label distribution over its samples (mode coverage).
Each run lives in its own subfolder (a rerun reuses finished runs); report.md collects
the numbers and figures. --smoke uses the configs' tiny variants (tests).
"""

import os
import sys

from absl import flags
import numpy as np

# `python experiments/<study>/run.py` puts only this folder on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments import common  # noqa: E402  (first: it splits the CPU host before JAX starts)
import jax  # noqa: E402
from experiments.celeba_gans import gan_analysis  # noqa: E402
from jaxgen import data as data_lib  # noqa: E402
from jaxgen import reporting  # noqa: E402
from jaxgen import workdir as workdir_lib  # noqa: E402

CELEBA_RUNS = ("celeba_dcgan", "celeba_acgan", "celeba_infogan")
MNIST_RUNS = ("mnist_classifier", "mnist_dcgan", "mnist_acgan", "mnist_infogan")


def train_runs(workdir: str, names: tuple[str, ...], args: dict[str, str | None],
               data: dict[str, str | None]) -> dict[str, dict]:
  """Trains (or reloads) each run; returns {name: {"result", "config", "seconds"}}."""
  runs = {}
  for i, name in enumerate(names, start=1):
    spec = f"{name}:{args[name]}" if args.get(name) else name
    config = common.load_config(spec, **data)
    trained = common.train_or_reuse(
        config, os.path.join(workdir, name),
        f"[{i}/{len(names)}] {name}: {config.train.num_steps} steps on {config.data.name} "
        f"-> {os.path.join(workdir, name)}")
    runs[name] = {"result": trained.result, "config": config, "seconds": trained.seconds,
                  "cpu_seconds": trained.cpu_seconds}
  return runs


def _figure(run: str, stem: str, title: str) -> list[str]:
  return [f"### {title}", "", f"![{stem}]({run}/figures/{stem}.png)", ""]


def _run_table(runs: dict[str, dict]) -> list[str]:
  rows = []
  for name, run in runs.items():
    result = run["result"]
    _, rates = workdir_lib.metric_series(workdir_lib.read_metrics(result.workdir),
                                         "train/steps_per_sec")
    rows.append([name, f"{result.objective.num_params(result.state):,}",
                 int(jax.device_get(result.state.step)),
                 f"{rates[-1]:.2f}" if len(rates) else "", f"{run['seconds']:.0f}",
                 f"{run['cpu_seconds']:.0f}"])
  return [reporting.markdown_table(rows, ["run", "parameters", "steps",
                                          "steps/s when trained (incl. evals)",
                                          "wall seconds", "CPU seconds (all cores)"]),
          "",
          f"Wall and CPU seconds of this invocation (a rerun that reuses a finished run "
          f"only evaluates it) on {jax.device_count()} x {jax.devices()[0].device_kind} with "
          f"{os.cpu_count()} CPU cores; wall time grows with other load on the machine, CPU "
          f"time much less.",
          ""]


def _eval_table(runs: dict[str, dict], names: tuple[str, ...]) -> list[str]:
  keys = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake",
          "aux_acc_real", "info_acc")
  rows = [[name] + [runs[name]["result"].eval_metrics.get(k, "") for k in keys]
          for name in names]
  return [reporting.markdown_table(rows, ["run", *keys]), ""]


def mnist_analysis(workdir: str, runs: dict[str, dict], smoke: bool) -> list[str]:
  """Judges the MNIST GANs with the classifier; returns report lines."""
  per = 10 if smoke else 100
  clf = runs["mnist_classifier"]["result"]
  acgan = runs["mnist_acgan"]["result"]
  infogan = runs["mnist_infogan"]["result"]
  dcgan = runs["mnist_dcgan"]["result"]
  rng = jax.random.PRNGKey(2024)
  common.say("Judging the generators with the classifier ...")
  acc = gan_analysis.conditioned_class_accuracy(acgan.objective, acgan.state, clf.objective,
                                                clf.state, rng, num_per_class=per)
  purity = gan_analysis.code_purity(infogan.objective, infogan.state, clf.objective,
                                    clf.state, rng, num_per_value=per)
  coverage = gan_analysis.predicted_class_distribution(
      dcgan.objective, dcgan.state, clf.objective, clf.state, rng, num_images=10 * per)
  gan_analysis.save_count_matrix(
      os.path.join(workdir, "figures", "acgan_confusion.png"), acc["confusion"],
      "conditioned class", "classifier's label", "AC-GAN digits labelled by the classifier")
  gan_analysis.save_count_matrix(
      os.path.join(workdir, "figures", "infogan_code_vs_label.png"), purity["counts"],
      "categorical code value", "classifier's label", "InfoGAN code values vs labels")

  clf_config = runs["mnist_classifier"]["config"]
  num_test = data_lib.get_dataset_info(clf_config.data).num_examples["test"]
  if clf_config.train.num_eval_batches:
    num_test = min(num_test, clf_config.train.num_eval_batches * clf_config.data.batch_size)
  generator = lambda r: "its EMA generator" if r.state.g_ema is not None else "its generator"
  lines = ["## Judged by a classifier trained on real labels", ""]
  lines += [f"The classifier (`configs/mnist_classifier.py`, trained by jaxgen on the "
            f"4,500 mnist_5k training digits, {clf_config.train.num_steps} steps) has **test "
            f"accuracy {clf.eval_metrics['accuracy']:.4f}** on {num_test} test digits "
            f"(cross-entropy {clf.eval_metrics['ce_nats']:.4f} nats).", ""]
  lines += [f"- **AC-GAN conditioned-class accuracy: {acc['accuracy']:.3f}** "
            f"({acc['num_images']} digits, {per} per class, from {generator(acgan)}): the "
            f"fraction the classifier labels as the class they were generated for. Per "
            f"class: {', '.join(f'{c}: {a:.2f}' for c, a in enumerate(acc['per_class']))}.",
            f"- **InfoGAN code purity: {purity['purity']:.3f}** ({purity['num_images']} "
            f"digits, {per} per code value; no labels in training). Best one-to-one "
            f"assignment of code values to digits: {purity['matched_accuracy']:.3f}; the "
            f"10 values have {purity['distinct_majorities']} distinct majority digits "
            f"(majority per value: {purity['majority'].tolist()}).",
            f"- DCGAN samples labelled by the classifier ({coverage['num_images']} samples): "
            f"class fractions {np.round(coverage['fractions'], 3).tolist()}; entropy "
            f"{coverage['entropy_nats']:.3f} nats (uniform: {np.log(10):.3f}).", ""]
  lines += ["![confusion](figures/acgan_confusion.png)", "",
            "![purity](figures/infogan_code_vs_label.png)", ""]
  return lines


def write_report(workdir: str, runs: dict[str, dict], quick: bool, extra: list[str]) -> str:
  gans = tuple(n for n in runs if n != "mnist_classifier")
  prefix = "mnist" if quick else "celeba"
  title = ("GANs on MNIST (quick mode: the offline versions of the CelebA study)" if quick
           else "GANs on CelebA 64x64")
  lines = [f"# {title}", "", "## Runs", ""] + _run_table(runs)
  lines += ["## Final eval metrics (`test` split; D normalises with batch statistics)", ""]
  lines += _eval_table(runs, gans) + extra
  lines += ["## Figures", ""]
  lines += _figure(f"{prefix}_dcgan", "samples", "DCGAN: 32 samples from fixed noise")
  lines += _figure(f"{prefix}_dcgan", "learning_curves", "DCGAN learning curves")
  if quick:
    lines += _figure("mnist_acgan", "class_grid", "AC-GAN: one noise per row, classes 0-9 across")
  else:
    lines += _figure("celeba_acgan", "attribute_pairs",
                     "AC-GAN: same noise, without (top) and with (bottom) the attribute")
  lines += _figure(f"{prefix}_acgan", "learning_curves", "AC-GAN learning curves")
  lines += _figure(f"{prefix}_infogan", "code_rows",
                   "InfoGAN: fixed noise, one row per code, its 10 values across")
  lines += _figure(f"{prefix}_infogan", "learning_curves", "InfoGAN learning curves")
  return common.write_report(workdir, lines)


def run_study(workdir: str, quick: bool = False, smoke: bool = False,
              data_dir: str | None = None, manual_dir: str | None = None,
              source: str = "folder") -> str:
  """Trains the study's runs, analyses them and writes report.md; returns its path."""
  workdir = os.path.abspath(workdir)
  os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  data = {"data_dir": data_dir}
  if quick:
    names, args = MNIST_RUNS, {n: "smoke" if smoke else None for n in MNIST_RUNS}
  else:
    names = CELEBA_RUNS
    args = {n: f"source={source}" + (",smoke" if smoke else "") for n in CELEBA_RUNS}
    data["manual_dir"] = manual_dir
  runs = train_runs(workdir, names, args, data)
  extra = mnist_analysis(workdir, runs, smoke) if quick else []
  path = write_report(workdir, runs, quick, extra)
  common.say(f"Report: {path}")
  return path


def main():
  """Defines the flags (here, so tests can import this module) and runs."""
  common.define_study_flags("Run the MNIST versions offline instead of CelebA.",
                            workdir_help="Study folder: one subfolder per run, report.md.")
  flags.DEFINE_bool("smoke", False, "Tiny configs and few analysis samples (tests).")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
  flags.DEFINE_string("manual_dir", None, "CelebA files (full mode).")
  flags.DEFINE_enum("source", "folder", ["folder", "catalog"],
                    "CelebA route: the extracted folder layout or the TFDS catalog's files.")
  common.main(lambda cfg: run_study(cfg.workdir, cfg.quick, cfg.smoke, cfg.data_dir,
                                    cfg.manual_dir, cfg.source))


if __name__ == "__main__":
  main()
