"""The workdir contract: config.json, metrics.jsonl (+ TensorBoard events), figures/.

    workdir/
      config.json        the run's config; a rerun must agree with it (see check_config)
      metrics.jsonl      one JSON object per line: {"step": int, "train/loss": float, ...}
      events.out.tfevents.*   the same scalars (and images) for TensorBoard
      checkpoints/       orbax checkpoints, the last few kept
      figures/           reconstructions.png, samples.png, learning_curves.png, ...
      report.md          final metrics with the figures linked
"""

import json
import math
import os
from typing import Any, Iterable, Mapping

import jax
import ml_collections
import numpy as np

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
FIGURES_DIR = "figures"
CHECKPOINTS_DIR = "checkpoints"

# Fields a rerun on the same workdir may change: schedule, logging and where data lives.
MUTABLE_FIELDS = (
    "train.num_steps", "train.eval_every", "train.checkpoint_every", "train.log_every",
    "train.max_to_keep", "train.progress_bar", "train.num_eval_batches",
    "data.data_dir", "data.manual_dir", "data.download",
)
# Fields added to the configs after runs were written: a stored config without the field
# ran with this value, so it still resumes.
ABSENT_DEFAULTS = {"model.dtype": "float32"}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, name + "."))
    else:
      flat[name] = list(value) if isinstance(value, tuple) else value
  return flat


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A JSON-able dict of `config` (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def write_or_check_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json, or checks the command's config against the stored one.

  Raises:
    ValueError: the workdir holds a run whose config differs in fields that would
      change what is trained; the message lists each field with both values.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    old_flat = {**ABSENT_DEFAULTS, **_flatten(old)}
    new_flat = {**ABSENT_DEFAULTS, **_flatten(new)}
    differing = [k for k in sorted(set(old_flat) | set(new_flat))
                 if k not in MUTABLE_FIELDS and old_flat.get(k, "<absent>") != new_flat.get(k, "<absent>")]
    if differing:
      lines = "\n".join(f"  {k}: workdir has {old_flat.get(k, '<absent>')!r}, "
                        f"command has {new_flat.get(k, '<absent>')!r}" for k in differing)
      raise ValueError(
          f"The workdir {workdir} holds a run with a different config:\n{lines}\n"
          f"Use a new --workdir for a new experiment, or rerun with the stored values "
          f"(only {', '.join(MUTABLE_FIELDS)} may change between runs of one workdir).")
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.replace(tmp, path)  # Atomic: a crash never leaves half a config.


def _to_float(value: Any) -> float:
  return float(np.asarray(value))


class MetricWriter:
  """Writes scalars to metrics.jsonl and TensorBoard; images to TensorBoard.

  Only process 0 writes. Lines are appended and flushed at once, so a crashed run keeps
  every metric it logged.
  """

  def __init__(self, workdir: str):
    from clu import metric_writers
    self._active = jax.process_index() == 0
    self._path = os.path.join(workdir, METRICS_FILE)
    # TensorBoard only (no console echo: the progress bar and eval logs cover that).
    self._tb = (metric_writers.SummaryWriter(workdir) if self._active
                else metric_writers.MultiWriter([]))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Logs `{name: value}` at `step`; names should be "<split>/<metric>"."""
    values = {k: _to_float(v) for k, v in scalars.items()}
    self._tb.write_scalars(step, values)
    if self._active:
      record = {"step": int(step)}
      # JSON has no NaN/Inf: store them as strings so the line stays valid JSON.
      record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
      with open(self._path, "a") as f:
        f.write(json.dumps(record) + "\n")

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self._tb.write_images(step, {k: np.asarray(v) for k, v in images.items()})

  def flush(self) -> None:
    self._tb.flush()

  def close(self) -> None:
    self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """Reads metrics.jsonl; a step logged again (after a resume) keeps its last values."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  by_step: dict[int, dict[str, Any]] = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      record = json.loads(line)
      values = {k: (float(v) if isinstance(v, str) else v) for k, v in record.items()}
      by_step.setdefault(record["step"], {"step": record["step"]}).update(values)
  return [by_step[s] for s in sorted(by_step)]


def metric_series(records: Iterable[Mapping[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of metric `name` over `records` from `read_metrics`."""
  pairs = [(r["step"], r[name]) for r in records if name in r]
  if not pairs:
    return np.zeros(0, int), np.zeros(0)
  steps, values = zip(*pairs)
  return np.asarray(steps), np.asarray(values, dtype=float)
