"""Restoring a finished (or interrupted) run from its workdir for offline evaluation."""

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import checkpoints
from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen import workdir as workdir_lib


class NoCheckpointError(FileNotFoundError):
  """The workdir has no run config or no checkpoint to evaluate."""


@dataclasses.dataclass
class RestoredRun:
  """A run's config, objective and latest state."""
  config: ml_collections.ConfigDict
  objective: objectives.Objective
  state: Any
  step: int
  workdir: str


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config from workdir/config.json.

  Raises:
    NoCheckpointError: there is no config.json (not a jaxgen workdir).
  """
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.exists(path):
    raise NoCheckpointError(
        f"{workdir} is not a jaxgen workdir: it has no {workdir_lib.CONFIG_FILE}. Pass the "
        f"--workdir of a training run (python -m jaxgen.main --config=... --workdir=DIR).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_run(workdir: str, data_dir: str | None = None) -> RestoredRun:
  """Builds the run's objective and restores its latest checkpoint (trains nothing).

  Args:
    workdir: a training run's workdir.
    data_dir: overrides the stored `data.data_dir` (e.g. the run was trained elsewhere).

  Raises:
    NoCheckpointError: no config.json or no checkpoint in the workdir.
    checkpoints.CheckpointError: an unreadable checkpoint.
  """
  workdir = os.path.abspath(workdir)
  config = load_config(workdir)
  if data_dir is not None:
    config.data.data_dir = data_dir
  ckpt_dir = os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)
  if not os.path.isdir(ckpt_dir):
    raise NoCheckpointError(
        f"{workdir} has no checkpoint to evaluate ({ckpt_dir} does not exist): the run "
        f"never reached train.checkpoint_every. Train it first with python -m jaxgen.main "
        f"--config=... --workdir={workdir}.")
  checkpointer = checkpoints.Checkpointer(ckpt_dir, read_only=True)
  try:
    if checkpointer.latest_step() is None:
      raise NoCheckpointError(
          f"{workdir} has no checkpoint to evaluate ({ckpt_dir} is empty). Train it first "
          f"with python -m jaxgen.main --config=... --workdir={workdir}.")
    objective = objectives.get_objective(config)
    info = data_lib.get_dataset_info(config.data)
    batch = config.data.batch_size
    example = {"image": jnp.zeros((batch,) + tuple(info.image_shape), jnp.float32)}
    if info.num_classes:
      example["label"] = jnp.zeros((batch,), jnp.int32)
    template = jax.jit(objective.init_state)(jax.random.PRNGKey(config.seed), example)
    state, _ = checkpointer.restore_latest(template, jax.random.PRNGKey(0))
  finally:
    checkpointer.close()
  return RestoredRun(config=config, objective=objective, state=state,
                     step=int(jax.device_get(state.step)), workdir=workdir)
