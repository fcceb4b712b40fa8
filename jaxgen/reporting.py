"""report.md for a training run: final metrics, timing, figures and the config."""

import json
import os
from typing import Any, Mapping

import jax
import ml_collections

from jaxgen import workdir as workdir_lib

# Human-readable descriptions of metric names, with units.
METRIC_DOCS = {
    "elbo_nats": "ELBO per example (nats; higher is better; its negative is the usual 'test loss')",
    "nll_nats": "reconstruction term -E_q log p(x|z) (nats)",
    "kl_nats": "KL(q(z|x) || p(z)) (nats)",
    "bits_per_dim": "negative ELBO in bits per dimension (8-bit scale)",
    "loss": "training objective (nll + beta * KL for VAEs)",
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
  split = config.data.get("eval_split", "test")
  lines = [f"# {config.model.name} ({config.objective.name}) on {config.data.name}", ""]
  lines += [f"Step {step} of {config.train.num_steps}; {objective.num_params(state):,} "
            f"model parameters.", ""]
  headline = objective.headline_metric
  if headline == "elbo_nats" and "elbo_nats" in eval_metrics:
    lines += [f"**Test negative ELBO: {-eval_metrics['elbo_nats']:.2f} nats "
              f"({eval_metrics.get('bits_per_dim', float('nan')):.4f} bits/dim)** on the "
              f"`{split}` split.", ""]
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
  fig_dir = os.path.join(workdir, workdir_lib.FIGURES_DIR)
  for name in sorted(os.listdir(fig_dir)) if os.path.isdir(fig_dir) else []:
    if name.endswith(".png"):
      lines += [f"### {name[:-4].replace('_', ' ')}", "",
                f"![{name}]({workdir_lib.FIGURES_DIR}/{name})", ""]
  lines += ["## Config", "", "```json",
            json.dumps(workdir_lib.config_to_dict(config), indent=2, sort_keys=True), "```", ""]
  path = os.path.join(workdir, "report.md")
  with open(path + ".tmp", "w") as f:
    f.write("\n".join(lines))
  os.replace(path + ".tmp", path)
  return path
