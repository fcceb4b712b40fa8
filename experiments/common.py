"""Scaffolding every study shares: progress messages, configs, runs, reports, the CLI.

A study is `experiments/<study>/run.py` (its command line and the order of its runs)
next to modules with what only it computes; the generic evaluators live in
`jaxgen.evaluation`.
"""

import dataclasses
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import ml_collections

from jaxgen import config_lib
from jaxgen import host_devices
from jaxgen import paths
from jaxgen import runtime

# Every study imports this module first, before anything imports JAX or TensorFlow.
# A study trains several configs in one process: split a CPU-only host into the largest
# `train.cpu_devices` of their defaults now, while JAX can still take the flag; each run's
# mesh then uses its own config's share (host_devices.mesh_devices).
STUDY_CPU_DEVICES = 2
host_devices.configure_count(min(STUDY_CPU_DEVICES, host_devices.usable_cores()))
# TensorFlow without its C++ start-up lines, unless the command asks for --verbosity.
runtime.start_tensorflow(quiet=not any(
    arg.startswith(("--verbosity", "-v")) for arg in sys.argv[1:]))

from jaxgen import train  # noqa: E402  (after TensorFlow's quiet start)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_FILE = "report.md"


def say(message: str) -> None:
  """A time-stamped progress line on stdout."""
  print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_config(spec: str, **data_fields: Any) -> ml_collections.ConfigDict:
  """configs/<name>.py[:arg] (or a path), with `data_fields` set where not None.

  Args:
    spec: "<name or path>[:<arg>]", e.g. "mnist_vae:model=A" (as --config takes it).
    **data_fields: fields of `config.data` to set for this study, e.g. data_dir.
  """
  name, sep, arg = spec.partition(":")
  if os.sep not in name and not name.endswith(".py"):
    name = os.path.join(REPO, "configs", f"{name}.py")
  config = config_lib.load(name + sep + arg)
  for field, value in data_fields.items():
    if value is not None:
      config.data[field] = value
  return config


@dataclasses.dataclass
class Trained:
  """A finished run and what it cost this invocation (seconds of wall and CPU time)."""
  result: train.TrainResult
  seconds: float
  cpu_seconds: float


def train_or_reuse(config: ml_collections.ConfigDict, run_dir: str, message: str) -> Trained:
  """Trains `config` into `run_dir`, or reuses the run finished there, after `message`."""
  say(message)
  start, cpu_start = time.perf_counter(), time.process_time()
  result = train.train_and_evaluate(config, run_dir)
  # CPU seconds of all threads: unlike wall time, barely inflated by other processes.
  return Trained(result, time.perf_counter() - start, time.process_time() - cpu_start)


def write_report(workdir: str, lines: Sequence[str], numbers: Any = None,
                 numbers_file: str = "results.json") -> str:
  """Writes workdir/report.md (and the numbers as JSON), never half-written.

  Returns:
    The report's path.
  """
  if numbers is not None:
    paths.write_atomically(os.path.join(workdir, numbers_file),
                           json.dumps(numbers, indent=2, sort_keys=True, default=float))
  path = os.path.join(workdir, REPORT_FILE)
  paths.write_atomically(path, "\n".join(lines))
  return path


def define_study_flags(quick_help: str,
                       workdir_help: str = "Where runs, figures and report.md go.") -> None:
  """Defines the flags every study has: --workdir (required) and --quick."""
  flags.DEFINE_string("workdir", None, workdir_help)
  flags.DEFINE_bool("quick", False, quick_help)
  flags.mark_flags_as_required(["workdir"])


def main(run: Callable[[Any], Any], quiet_logs: bool = False) -> None:
  """Runs `run(flags.FLAGS)` as an absl program (flags defined by the caller).

  Args:
    run: the study, called with the parsed flags.
    quiet_logs: only warnings from absl logging (progress: the study's own lines).
  """
  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    runtime.enable_compilation_cache()
    if quiet_logs:
      logging.set_verbosity(logging.WARNING)
    run(flags.FLAGS)

  app.run(_main)
