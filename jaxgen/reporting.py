"""report.md for a training run: final metrics, timing, figures and the config."""

import json
from typing import Any, Mapping

import jax
import ml_collections

from jaxgen import config_lib
from jaxgen import paths
from jaxgen import workdir as workdir_lib

REPORT_FILE = "report.md"

# Human-readable descriptions of metric names, with units: the "meaning" column of the
# reports' markdown tables, where a bar inside a cell must be escaped (\\|). Names that
# several families emit (loss, bits_per_dim) say what each family means by them.
METRIC_DOCS = {
    # VAEs (autoencoding).
    "elbo_nats": "ELBO per example (nats; higher is better; its negative is the usual 'test loss')",
    "nll_nats": "reconstruction term -E_q log p(x\\|z) (nats)",
    "kl_nats": "KL(q(z\\|x) \\|\\| p(z)) (nats)",
    "bits_per_dim": ("the negative bound per pixel in bits: a bound on the NLL of the 8-bit "
                     "image for the Gaussian baseline and for VAEs with a discretized-logistic "
                     "or Gaussian decoder, of the binary image for Bernoulli decoders of "
                     "binarized data; not reported for a Bernoulli decoder of grey levels, "
                     "whose -ELBO is a cross-entropy, not a likelihood of the data"),
    "loss": ("training objective: nll + beta * KL (VAEs); ce_nats (classifier); the "
             "dequantized NLL less its constant 8-bit term, plus the eps penalty (Gaussian "
             "baseline); d_loss + g_loss for GANs, a progress summary, not an objective"),
    # Gaussian baseline (likelihood).
    "dequantized_nll_nats": ("uniform-dequantization bound on the NLL of the 8-bit image: "
                             "E_u[-log p((k + u) / 256)] + D log(256 / data range) >= "
                             "-log P(k), exact for the fitted density (nats per image)"),
    # Classifier (classification).
    "ce_nats": "cross-entropy -log p(label \\| x) of the true label (nats)",
    "accuracy": "fraction of images whose label is the classifier's top class",
    # GANs (adversarial). BCE losses (objective.loss='nonsaturating') are in nats; with
    # 'hinge' the D and G losses are hinge values.
    "d_loss_real": "D's loss on real images: BCE to target 1 - label_smoothing (nats)",
    "d_loss_fake": "D's loss on generated images: BCE to target 0 (nats)",
    "d_loss": ("D's objective: d_loss_real + d_loss_fake, plus the AC-GAN class or "
               "InfoGAN code terms"),
    "g_loss": ("G's (and InfoGAN Q's) objective: g_loss_adv plus the AC-GAN class or "
               "InfoGAN code terms"),
    "g_loss_adv": "G's adversarial term: -log D(G(z)), non-saturating (nats)",
    "d_acc_real": "fraction of real images D calls real (logit > 0)",
    "d_acc_fake": "fraction of generated images D calls fake (logit < 0)",
    "d_prob_real": "mean D(x) on real images, as a probability",
    "d_prob_fake": "mean D(G(z)) on generated images, as a probability",
    "aux_ce_real_nats": "AC-GAN: class cross-entropy of D's class head on real images (nats)",
    "aux_ce_fake_nats": ("AC-GAN: class cross-entropy on generated images, against the class "
                         "they were drawn for (nats)"),
    "aux_acc_real": "AC-GAN: fraction of real images D's class head labels correctly",
    "aux_acc_fake": ("AC-GAN: fraction of generated images classified as the class they "
                     "were drawn for"),
    "info_ce_nats": ("InfoGAN: cross-entropy of Q's predictions of the fakes' categorical "
                     "codes, summed over codes (nats)"),
    "info_acc": "InfoGAN: fraction of categorical code values Q recovers from the fakes",
    "info_mi_bound_nats": ("InfoGAN: H(c) - info_ce_nats, a lower bound on the mutual "
                           "information I(c; G(z, c)) (nats)"),
    "info_continuous_nll_nats": ("InfoGAN: Gaussian NLL of the continuous codes under Q, "
                                 "summed over codes (nats)"),
}


def markdown_table(rows: list[list[Any]], header: list[str]) -> str:
  """A GitHub markdown table."""
  def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def write_run_report(workdir: str, config: ml_collections.ConfigDict, objective: Any,
                     state: Any, eval_metrics: Mapping[str, float],
                     timing: Mapping[str, Any]) -> str:
  """Writes workdir/report.md and returns its path."""
  step = int(jax.device_get(state.step))
  split = config_lib.with_defaults(config.data, "data").eval_split
  lines = [f"# {config.model.name} ({config.objective.name}) on {config.data.name}", ""]
  lines += [f"Step {step} of {config.train.num_steps}; {objective.num_params(state):,} "
            f"model parameters.", ""]
  headline = objective.headline_metric
  if headline == "elbo_nats" and "elbo_nats" in eval_metrics:
    bpd = eval_metrics.get("bits_per_dim")  # None: not a likelihood of the data's values.
    lines += [f"**Test negative ELBO: {-eval_metrics['elbo_nats']:.2f} nats"
              + (f" ({bpd:.4f} bits/dim)" if bpd is not None else "")
              + f"** on the `{split}` split.", ""]
  elif headline in eval_metrics:
    # Other families (Gaussian NLL, classifier accuracy, ...): the metric as emitted.
    bpd = eval_metrics.get("bits_per_dim")
    lines += [f"**Test {headline}: {float(eval_metrics[headline]):.4f}"
              + (f" ({bpd:.4f} bits/dim)" if bpd is not None else "")
              + f"** on the `{split}` split.", ""]
  lines += [f"## Final metrics (`{split}` split)", ""]
  rows = [[name, float(value), METRIC_DOCS.get(name, "")]
          for name, value in sorted(eval_metrics.items())]
  lines += [markdown_table(rows, ["metric", "value", "meaning"]), ""]
  if timing.get("train_seconds"):
    trained = step - timing["start_step"]
    lines += ["## Timing", "",
              f"{trained} steps in {timing['train_seconds']:.1f} s "
              f"({trained / timing['train_seconds']:.2f} steps/s incl. eval and checkpoints; "
              f"first step incl. compile {timing['compile_seconds']:.2f} s) on "
              f"{jax.device_count()} x {jax.devices()[0].device_kind}.", ""]
  lines += ["## Figures", ""]
  for name in paths.list_names(paths.join(workdir, workdir_lib.FIGURES_DIR)):
    if name.endswith(".png"):
      lines += [f"### {name[:-4].replace('_', ' ')}", "",
                f"![{name}]({workdir_lib.FIGURES_DIR}/{name})", ""]
  lines += ["## Config", "", "```json",
            json.dumps(workdir_lib.config_to_dict(config), indent=2, sort_keys=True), "```", ""]
  path = paths.join(workdir, REPORT_FILE)
  paths.write_atomically(path, "\n".join(lines))
  return path


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def summary_line(objective: Any, eval_metrics: Mapping[str, float], workdir: str,
                 split: str, wall_seconds: float, cpu_seconds: float) -> str:
  """The one line a finished command ends on: time, headline metric, report path."""
  headline = objective.headline_metric
  if headline == "elbo_nats" and "elbo_nats" in eval_metrics:
    result = f"{split} -ELBO {-float(eval_metrics['elbo_nats']):.1f} nats"
  elif headline in eval_metrics:
    result = f"{split} {headline} {float(eval_metrics[headline]):.4g}"
  else:
    result = "no eval metrics"
  return (f"done in {_duration(wall_seconds)} (CPU time {_duration(cpu_seconds)}): "
          f"{result}; report at {paths.join(workdir, REPORT_FILE)}")
