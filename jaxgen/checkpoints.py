"""Orbax checkpoints of the whole training state plus the run's RNG key."""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgen import errors


CheckpointError = errors.CheckpointError


class Checkpointer:
  """Saves and restores `{"state": state, "rng": key_data}` under workdir/checkpoints.

  Saves are atomic (orbax writes to a temporary folder and renames it), so a crash
  mid-save never replaces the last good checkpoint.
  """

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, rng: jax.Array) -> None:
    """Saves `state` and `rng` (a typed or raw PRNG key) at `step` and waits for it."""
    item = {"state": state, "rng": _key_data(rng)}
    self._manager.save(int(step), args=ocp.args.StandardSave(item), force=True)
    self._manager.wait_until_finished()

  def restore_latest(self, state_template: Any, rng_template: jax.Array) -> tuple[Any, jax.Array] | None:
    """Restores the latest checkpoint into the structure of the templates.

    Args:
      state_template: a state with the right structure, shapes, dtypes and shardings.
      rng_template: a key like the one saved.

    Returns:
      (state, rng) or None when there is no checkpoint.

    Raises:
      CheckpointError: the latest checkpoint is unreadable or does not match the model.
    """
    step = self.latest_step()
    if step is None:
      return None
    template = {"state": state_template, "rng": _key_data(rng_template)}
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax raises many types; all mean "cannot use this one".
      others = [s for s in self.all_steps() if s != step]
      raise CheckpointError(
          f"Cannot restore checkpoint step {step} in {self.directory} "
          f"({type(e).__name__}: {str(e)[:500]}). It is corrupt or was written by a "
          f"different model/config. Remove {os.path.join(self.directory, str(step))} to "
          f"resume from an earlier step ({others or 'none left'}), or use a new --workdir."
      ) from e
    rng = restored["rng"]
    if jax.dtypes.issubdtype(getattr(rng_template, "dtype", None), jax.dtypes.prng_key):
      rng = jax.random.wrap_key_data(rng)
    return restored["state"], rng

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _key_data(rng: jax.Array) -> jax.Array:
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(rng)
  return rng
