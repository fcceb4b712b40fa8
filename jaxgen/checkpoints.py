"""Orbax checkpoints of the whole training state plus the run's RNG key."""

import time
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from jaxgen import errors
from jaxgen import paths

CheckpointError = errors.CheckpointError

# Checkpoints taken out of use (unreadable, or after a --resume_step) are moved here,
# beside checkpoints/, never deleted.
SET_ASIDE_DIR = "checkpoints_set_aside"


# Whether `save` returns once the arrays are copied to host memory, writing them in the
# background (see Checkpointer).
ASYNC_SAVES = True


class Checkpointer:
  """Saves and restores `{"state": state, "rng": key_data}` under workdir/checkpoints.

  Saves are atomic (orbax writes a temporary folder and renames it), so a kill mid-save
  never replaces the last good checkpoint; leftover temporary folders are removed when
  the next run opens the directory.

  `save` returns once the state is copied to host memory; orbax writes it in the
  background while training goes on, so big models on accelerators do not stall. Every
  read (`restore`, `all_steps` after `wait`) and `close` first waits for the write to
  finish, so nothing sees a half-written step and a run never exits before its last
  save is on disk. Set `ASYNC_SAVES = False` to wait after every save.
  """

  def __init__(self, directory: str, max_to_keep: int = 3, *, read_only: bool = False):
    """Opens `directory`.

    Args:
      directory: the checkpoints folder.
      max_to_keep: how many of the newest checkpoints saving keeps.
      read_only: for readers beside a possibly running training (evaluation): touch
        nothing, neither unfinished saves nor unreadable checkpoints.
    """
    self.directory = paths.resolve(directory)
    self.read_only = read_only
    if not read_only:
      self._remove_unfinished_saves()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
            # Done above, before the manager exists: orbax would do it in a background
            # thread that races with whatever the caller does next.
            cleanup_tmp_directories=False, enable_async_checkpointing=True))

  def _remove_unfinished_saves(self) -> None:
    """Deletes the temporary folders of saves a kill interrupted (process 0 deletes)."""
    if jax.process_index() == 0:
      for name in paths.list_names(self.directory):
        if ocp.step.TMP_DIR_SUFFIX in name:
          logging.info("Removing the unfinished checkpoint save %s.", name)
          paths.remove_tree(paths.join(self.directory, name))
    _sync_processes("jaxgen removed unfinished saves")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, rng: jax.Array) -> None:
    """Saves `state` and `rng` (a typed or raw PRNG key) at `step`."""
    item = {"state": state, "rng": _key_data(rng)}
    self._manager.save(int(step), args=ocp.args.StandardSave(item))
    if not ASYNC_SAVES:
      self.wait()

  def wait(self) -> None:
    """Blocks until the last save is on disk."""
    self._manager.wait_until_finished()

  def restore(self, state_template: Any, rng_template: jax.Array,
              step: int | None = None) -> tuple[Any, jax.Array, int] | None:
    """Restores the newest readable checkpoint (or exactly `step`).

    An unreadable newer checkpoint (e.g. a file truncated by a full disk) is moved to
    `checkpoints_set_aside/` with a warning and the next older one is used. If none
    can be read, nothing is moved: the cause is then more likely a different model.

    Args:
      state_template: a state with the right structure, shapes, dtypes and shardings.
      rng_template: a key like the one saved.
      step: restore this step; the newer checkpoints are set aside, so the run goes on
        from `step` (used to back up before a divergence).

    Returns:
      (state, rng, step), or None when there is no checkpoint.

    Raises:
      CheckpointError: `step` does not exist or cannot be read, or no checkpoint can.
    """
    self.wait()
    steps = self.all_steps()
    # Every process must see the same steps before process 0 moves any aside.
    _sync_processes("jaxgen listed checkpoints")
    if step is not None and step not in steps:
      raise CheckpointError(
          f"--resume_step={step}: there is no checkpoint at step {step} in "
          f"{self.directory}; the checkpoints are at steps {steps or 'none'}.")
    candidates = [step] if step is not None else steps[::-1]
    failures = []
    for candidate in candidates:
      try:
        state, rng = self._restore_step(candidate, state_template, rng_template)
      except Exception as e:  # orbax raises many types; all mean "cannot use this one".
        failures.append(f"step {candidate}: {type(e).__name__}: {str(e)[:300]}")
        continue
      newer = [s for s in steps if s > candidate]
      if newer and not self.read_only:
        self._set_aside(newer, "resumed from an earlier step" if step is not None
                        else "unreadable")
      return state, rng, candidate
    if not failures:
      return None
    raise CheckpointError(
        f"No checkpoint in {self.directory} can be restored into this model "
        f"({'; '.join(failures)}). They were written by a different model or code "
        f"version, or are all damaged. Use a new --workdir, or move {self.directory} "
        f"away to start this one again.")

  def restore_latest(self, state_template: Any,
                     rng_template: jax.Array) -> tuple[Any, jax.Array] | None:
    """(state, rng) of the newest readable checkpoint, or None when there is none."""
    restored = self.restore(state_template, rng_template)
    return None if restored is None else restored[:2]

  def _restore_step(self, step: int, state_template: Any,
                    rng_template: jax.Array) -> tuple[Any, jax.Array]:
    template = {"state": state_template, "rng": _key_data(rng_template)}
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    rng = restored["rng"]
    if jax.dtypes.issubdtype(getattr(rng_template, "dtype", None), jax.dtypes.prng_key):
      rng = jax.random.wrap_key_data(rng)
    return restored["state"], rng

  def _set_aside(self, steps: list[int], reason: str) -> None:
    """Moves checkpoints `steps` out of the manager's directory (process 0 moves)."""
    aside_dir = paths.join(paths.parent(self.directory), SET_ASIDE_DIR)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for step in steps:
      target = paths.join(aside_dir, f"{step}-{reason.split()[0]}-{stamp}")
      if jax.process_index() == 0:
        paths.makedirs(aside_dir)
        paths.rename(paths.join(self.directory, str(step)), target)
      logging.warning("Checkpoint step %d (%s) moved to %s.", step, reason, target)
    _sync_processes("jaxgen set checkpoints aside")
    self._manager.reload()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _sync_processes(name: str) -> None:
  """A barrier across the run's processes (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def _key_data(rng: jax.Array) -> jax.Array:
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(rng)
  return rng
