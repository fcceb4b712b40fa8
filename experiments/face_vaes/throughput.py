"""Training speed of a config's model, measured on synthetic batches (no data needed)."""

import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgen import objectives
from jaxgen import train


def train_steps_per_second(config: ml_collections.ConfigDict, num_steps: int = 5,
                           num_train_examples: int | None = None) -> dict[str, Any]:
  """Times jitted training steps of `config`'s model and objective.

  The batch is uniform noise of shape (data.batch_size, *model.image_shape) in the data
  range, so the number is the model's compute speed without the input pipeline (on a
  CPU the pipeline is rarely the bottleneck for these models). The first step, which
  compiles, is timed separately.

  Args:
    config: an experiment config (its model.image_shape is used).
    num_steps: timed steps after the compiling one.
    num_train_examples: if given, also report seconds per epoch of this many examples.

  Returns:
    {"steps_per_sec", "examples_per_sec", "compile_seconds", "batch_size", "device",
     and "steps_per_epoch", "seconds_per_epoch" when num_train_examples is given}.
  """
  objective = objectives.get_objective(config)
  mesh = train.make_mesh(config)
  batch_size = config.data.batch_size
  shape = (batch_size,) + tuple(config.model.image_shape)
  rng = np.random.default_rng(0)
  # 8-bit levels, as real images have (a discretized likelihood expects them).
  images = objective.value_range.from_uint8(
      rng.integers(0, 256, shape).astype(np.float32)).astype(np.float32)
  batch = {"image": images}
  state = train.init_state(objective, jax.random.PRNGKey(0), batch, mesh)
  step = train.jit_train_step(objective.train_step, mesh)
  sharded = train.shard_batch(batch, mesh)
  key = jax.random.PRNGKey(1)
  start = time.perf_counter()
  state, metrics = step(state, sharded, key)
  jax.block_until_ready(metrics)
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = step(state, sharded, key)
  jax.block_until_ready(metrics)
  steps_per_sec = num_steps / (time.perf_counter() - start)
  result = {
      "steps_per_sec": steps_per_sec,
      "examples_per_sec": steps_per_sec * batch_size,
      "compile_seconds": compile_seconds,
      "batch_size": batch_size,
      "num_params": objective.num_params(state),
      "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
  }
  if num_train_examples:
    result["steps_per_epoch"] = num_train_examples // batch_size
    result["seconds_per_epoch"] = result["steps_per_epoch"] / steps_per_sec
  return result
