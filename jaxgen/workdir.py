"""The workdir contract: config.json, metrics.jsonl (+ TensorBoard events), figures/.

    workdir/
      config.json        the run's config; a rerun must agree with it (see check_config)
      config_changes.jsonl    fields changed on resume (learning rate, clipping, ...)
      metrics.jsonl      one JSON object per line: {"step": int, "train/loss": float, ...}
      events.out.tfevents.*   the same scalars (and images) for TensorBoard
      lock.json          while a run is going: its host and PID (see workdir_lock)
      checkpoints/       orbax checkpoints, the last few kept
      checkpoints_set_aside/  unreadable or superseded checkpoints, moved, not deleted
      figures/           reconstructions.png, samples.png, learning_curves.png, ...
      report.md          final metrics with the figures linked
"""

import json
import math
import time
from typing import Any, Iterable, Mapping

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import paths

CONFIG_FILE = "config.json"
CONFIG_CHANGES_FILE = "config_changes.jsonl"
METRICS_FILE = "metrics.jsonl"
FIGURES_DIR = "figures"
CHECKPOINTS_DIR = "checkpoints"

# Fields a rerun on the same workdir may change: schedule, logging, figures, where data
# lives, and the optimizer's step size and clipping (to recover from a divergence; the
# optimizer state's structure does not depend on them).
MUTABLE_FIELDS = (
    "train.num_steps", "train.eval_every", "train.checkpoint_every", "train.log_every",
    "train.max_to_keep", "train.progress_bar", "train.num_eval_batches",
    "train.curve_metrics", "train.cpu_devices",
    "data.data_dir", "data.manual_dir", "data.download",
    "optimizer.learning_rate", "optimizer.g_learning_rate", "optimizer.grad_clip_norm",
)
# Fields added to the configs after runs were written: a stored config without the field
# ran with this value, so it still resumes.
ABSENT_DEFAULTS = {"model.dtype": "float32",
                   "model.init": config_lib.SECTION_DEFAULTS["model"]["init"]}


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


def write_or_check_config(workdir: str,
                          config: ml_collections.ConfigDict) -> dict[str, tuple[Any, Any]]:
  """Writes config.json, or checks the command's config against the stored one.

  Returns:
    The MUTABLE_FIELDS whose value the command changes, {field: (stored, new)}.

  Raises:
    ConfigError: the workdir holds a run whose config differs in fields that would
      change what is trained; the message lists each field with both values.
  """
  path = paths.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  changed = {}
  if paths.exists(path):
    old = json.loads(paths.read_text(path))
    old_flat = {**ABSENT_DEFAULTS, **_flatten(old)}
    new_flat = {**ABSENT_DEFAULTS, **_flatten(new)}
    all_differing = [k for k in sorted(set(old_flat) | set(new_flat))
                     if old_flat.get(k, "<absent>") != new_flat.get(k, "<absent>")]
    differing = [k for k in all_differing if k not in MUTABLE_FIELDS]
    changed = {k: (old_flat.get(k), new_flat.get(k)) for k in all_differing
               if k in MUTABLE_FIELDS}
    if differing:
      lines = "\n".join(f"  {k}: workdir has {old_flat.get(k, '<absent>')!r}, "
                        f"command has {new_flat.get(k, '<absent>')!r}" for k in differing)
      raise errors.ConfigError(
          f"The workdir {workdir} holds a run with a different config:\n{lines}\n"
          f"Use a new --workdir for a new experiment, or rerun with the stored values "
          f"(only {', '.join(MUTABLE_FIELDS)} may change between runs of one workdir).")
  if jax.process_index() == 0:
    paths.write_atomically(path, json.dumps(new, indent=2, sort_keys=True))
  return changed


def record_config_changes(workdir: str, step: int,
                          changes: Mapping[str, tuple[Any, Any]]) -> None:
  """Logs the fields a resumed run changed and appends them to config_changes.jsonl."""
  if not changes:
    return
  logging.warning("Resuming from step %d with changed fields: %s.", step, ", ".join(
      f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
  if jax.process_index() == 0:
    record = {"step": int(step), "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "changes": {k: {"from": old, "to": new} for k, (old, new) in changes.items()}}
    paths.append_line(paths.join(workdir, CONFIG_CHANGES_FILE), json.dumps(record))


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
    self._path = paths.join(workdir, METRICS_FILE)
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
      paths.append_line(self._path, json.dumps(record))

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self._tb.write_images(step, {k: np.asarray(v) for k, v in images.items()})

  def flush(self) -> None:
    self._tb.flush()

  def close(self) -> None:
    self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """Reads metrics.jsonl; a step logged again (after a resume) keeps its last values."""
  path = paths.join(workdir, METRICS_FILE)
  if not paths.exists(path):
    return []
  by_step: dict[int, dict[str, Any]] = {}
  for record in _read_records(path):
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


def _read_records(path: str) -> list[dict[str, Any]]:
  """The JSON lines of metrics.jsonl; a torn line (a write cut by power loss) is skipped."""
  records = []
  for number, line in enumerate(paths.read_text(path).splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
      logging.warning("Skipping line %d of %s, which is not a whole record (a write cut "
                      "short?): %.80r", number, path, line)
      continue
    records.append(record)
  return records


def truncate_history(workdir: str, step: int) -> None:
  """Drops what was logged after `step` from metrics.jsonl and the TensorBoard events.

  A run resumed from the checkpoint at `step` logs the later steps again; dropping the
  old rows first keeps one history, each step once and in order. Files are rewritten
  atomically (only process 0 writes).
  """
  if jax.process_index() != 0:
    return
  path = paths.join(workdir, METRICS_FILE)
  if paths.exists(path):
    kept = [r for r in _read_records(path) if r["step"] <= step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    if text != paths.read_text(path):
      paths.write_atomically(path, text)
  for name in paths.list_names(workdir):
    if name.startswith("events.out.tfevents"):
      _truncate_event_file(paths.join(workdir, name), step)


def _truncate_event_file(path: str, step: int) -> None:
  """Rewrites a TensorBoard event file without the events logged after `step`."""
  import tensorflow as tf
  records, dropped = [], 0
  try:
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      if tf.compat.v1.Event.FromString(record).step > step:
        dropped += 1
      else:
        records.append(record)
  except tf.errors.DataLossError:
    dropped += 1  # A torn last record.
  if not dropped:
    return
  if not records:
    paths.remove(path)
    return
  # TFRecordWriter writes local and remote paths alike; the file is renamed into place.
  with tf.io.TFRecordWriter(path + ".tmp") as writer:
    for record in records:
      writer.write(record)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
