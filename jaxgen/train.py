"""THE training loop: one for every model family.

`train_and_evaluate(config, workdir)` builds the data pipeline and the objective named by
the config, then runs jitted steps with the batch sharded over a ('data',) mesh and the
state replicated, evaluates, checkpoints, logs, draws figures and writes a report. It
never looks inside the state or branches on the family: families plug in through
`jaxgen.objectives.base.Objective`.
"""

import dataclasses
import math
import os
import time
from typing import Any, Callable, Iterator

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgen import checkpoints
from jaxgen import config_lib
from jaxgen import data as data_lib
from jaxgen import errors
from jaxgen import figures
from jaxgen import objectives
from jaxgen import reporting
from jaxgen import workdir as workdir_lib


NonFiniteLossError = errors.NonFiniteLossError
TrainingInterrupted = errors.TrainingInterrupted


@dataclasses.dataclass
class TrainResult:
  """What `train_and_evaluate` returns (handy in Colab)."""
  state: Any
  objective: objectives.Objective
  eval_metrics: dict[str, float]
  workdir: str


# ------------------------------------------------------------------ devices
def make_mesh() -> Mesh:
  """A 1-D mesh over every device (all hosts) with the axis 'data'."""
  return Mesh(np.asarray(jax.devices()), ("data",))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Turns this process's numpy batch into global arrays sharded on 'data'."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def jit_train_step(step_fn: Callable, mesh: Mesh) -> Callable:
  """Jits `step_fn(state, batch, rng)`: state replicated and donated, batch sharded.

  The step's RNG is `fold_in(rng, state.step)`, so a resumed run draws the same noise.
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec("data"))

  def step(state, batch, rng):
    return step_fn(state, batch, jax.random.fold_in(rng, state.step))

  return jax.jit(step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def init_state(objective: objectives.Objective, rng: jax.Array,
               example_batch: dict[str, Any], mesh: Mesh) -> Any:
  """Initialises the objective's state directly replicated on the mesh.

  Creating it under jit with the replicated sharding gives it the same type the step
  returns, so the jitted step traces once rather than once more on its second call.
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(objective.init_state, out_shardings=replicated)(rng, example_batch)


def jit_eval_step(eval_fn: Callable, mesh: Mesh) -> Callable:
  """Jits an eval step into masked sums over the batch (replicated scalars).

  Summing on device means no per-example arrays cross hosts; the loop divides by the
  number of real (unpadded) examples.
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec("data"))

  def step(state, batch, rng):
    per_example = eval_fn(state, batch, rng)
    mask = batch["mask"]
    sums = {k: jnp.sum(v * mask) for k, v in per_example.items()}
    sums["_count"] = jnp.sum(mask)
    return sums

  return jax.jit(step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=replicated)


# ------------------------------------------------------------------ helpers
def _hide_accelerators_from_tf() -> None:
  """TensorFlow only feeds data: keep it off GPUs/TPUs so JAX gets all their memory."""
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU") if tf.config.list_physical_devices("TPU") else None


def _check_finite(step: int, metrics: dict[str, float], guarded: tuple[str, ...],
                  last_checkpoint: int | None, workdir: str) -> None:
  for name in guarded:
    if name in metrics and not math.isfinite(metrics[name]):
      label = "the updated training state" if name == "state" else f"train/{name}"
      kept = (f"The last good checkpoint (step {last_checkpoint}) in "
              f"{os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR)} is kept"
              if last_checkpoint is not None else "No checkpoint had been written yet")
      raise NonFiniteLossError(
          f"Step {step}: {label} is {metrics[name]}. Training stopped. {kept}; "
          f"rerunning the command resumes from it. Try a lower optimizer.learning_rate "
          f"or set optimizer.grad_clip_norm.")


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def evaluate(objective: objectives.Objective, state: Any, config: ml_collections.ConfigDict,
             mesh: Mesh, rng: jax.Array, eval_fn: Callable | None = None,
             split: str | None = None) -> dict[str, float]:
  """Averages the objective's per-example eval metrics over a whole split.

  Args:
    objective: the family.
    state: its state.
    config: the run's config (data fields are read).
    mesh: the device mesh.
    rng: key for stochastic metrics (e.g. the ELBO's posterior sample).
    eval_fn: a jitted eval step from `jit_eval_step`, to reuse its compilation.
    split: the split (default `config.data.eval_split`).

  Returns:
    {metric: mean over the split's examples}.
  """
  eval_fn = eval_fn or jit_eval_step(objective.eval_step, mesh)
  totals: dict[str, float] = {}
  max_batches = config.train.get("num_eval_batches", None)
  for i, batch in enumerate(data_lib.make_eval_batches(config.data, split=split)):
    if max_batches and i >= max_batches:
      break
    sums = jax.device_get(eval_fn(state, shard_batch(batch, mesh), jax.random.fold_in(rng, i)))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  count = totals.pop("_count", 0.0)
  if not count:
    raise ValueError(f"The eval split of dataset {config.data.name!r} is empty.")
  return {k: v / count for k, v in totals.items()}


def _spread_eval_images(config: ml_collections.ConfigDict, num: int) -> np.ndarray:
  """`num` eval images at evenly spaced positions of the split (fixed, not shuffled).

  Spreading them out matters: splits are often sorted by class (mnist_5k's test split
  starts with fifty zeros).
  """
  images, position = [], 0
  wanted = None
  for batch in data_lib.make_eval_batches(config.data):
    real = batch["image"][batch["mask"] > 0]
    if wanted is None:
      split = config.data.get("eval_split", "test")
      total = data_lib.get_dataset_info(config.data).num_examples.get(split, len(real))
      wanted = set(np.linspace(0, max(total // jax.process_count() - 1, 0), num).astype(int))
    images += [img for i, img in enumerate(real, position) if i in wanted]
    position += len(real)
    if len(images) >= num:
      break
  return np.stack(images[:num])


class _Figures:
  """Fixed inputs for figures, so grids at different steps are comparable."""

  def __init__(self, objective, config, mesh, rng):
    self.objective = objective
    self.preprocessing = config.data.get("preprocessing", "unit")
    self.images = _spread_eval_images(config, config.train.get("num_reconstructions", 32))
    self.num_samples = config.train.get("num_samples", 64)
    self.rng = rng
    replicated = NamedSharding(mesh, PartitionSpec())
    self._sample = jax.jit(objective.sample, static_argnums=2, out_shardings=replicated)
    self._reconstruct = jax.jit(objective.reconstruct, out_shardings=replicated)

  def draw(self, state, workdir: str, step: int, writer: workdir_lib.MetricWriter):
    fig_dir = os.path.join(workdir, workdir_lib.FIGURES_DIR)
    samples = np.asarray(jax.device_get(self._sample(state, self.rng, self.num_samples)))
    images = {"samples": figures.image_grid(samples, 8)}
    recons = self._reconstruct(state, {"image": jnp.asarray(self.images)}, self.rng)
    if jax.process_index() == 0:
      figures.save_image_grid(os.path.join(fig_dir, "samples.png"), samples, 8,
                              f"samples at step {step}")
    if recons is not None:
      recons = np.asarray(jax.device_get(recons))
      originals = figures.to_unit_range(self.images, self.preprocessing)
      images["reconstructions"] = figures.image_grid(
          np.concatenate([originals[:8], recons[:8]]), 8)
      if jax.process_index() == 0:
        figures.save_reconstructions(os.path.join(fig_dir, "reconstructions.png"),
                                     originals, recons, 8,
                                     f"test images (odd rows) and reconstructions, step {step}")
    for stem, (extra, ncols, title) in self.objective.extra_figures(
        state, self.rng, self.images).items():
      extra = np.asarray(jax.device_get(extra))
      images[stem] = figures.image_grid(extra, ncols)
      if jax.process_index() == 0:
        figures.save_image_grid(os.path.join(fig_dir, f"{stem}.png"), extra, ncols,
                                f"{title} (step {step})")
    writer.write_images(step, {k: v[None] for k, v in images.items()})


# ------------------------------------------------------------------ the loop
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
  """Trains the configured model, resuming from workdir's latest checkpoint.

  Args:
    config: an experiment config (see configs/); validated here.
    workdir: where config.json, metrics, checkpoints, figures and report.md go.

  Returns:
    The final state, the objective and the final eval metrics.

  Raises:
    ValueError: bad config, unknown names, a workdir holding a different config, an
      image shape the model cannot take.
    data.DatasetNotPreparedError: the dataset is not on disk and downloads are off.
    NonFiniteLossError: a NaN/Inf loss (the last good checkpoint stays).
    checkpoints.CheckpointError: an unreadable checkpoint.
  """
  config_lib.validate(config)
  workdir = os.path.abspath(workdir)
  _hide_accelerators_from_tf()
  # Fail fast on names and data before writing anything into the workdir.
  objective = objectives.get_objective(config)
  info = data_lib.get_dataset_info(config.data)
  mesh = make_mesh()
  if config.data.batch_size % jax.device_count():
    raise ValueError(f"data.batch_size={config.data.batch_size} must be divisible by the "
                     f"number of devices ({jax.device_count()}).")
  workdir_lib.write_or_check_config(workdir, config)
  logging.info("Dataset %s: %s", config.data.name, info)

  root = jax.random.PRNGKey(config.seed)
  init_rng, train_rng, eval_rng, figure_rng = jax.random.split(root, 4)
  example = {"image": jnp.zeros((config.data.batch_size,) + tuple(info.image_shape), jnp.float32)}
  if info.num_classes:
    example["label"] = jnp.zeros((config.data.batch_size,), jnp.int32)
  state = init_state(objective, init_rng, example, mesh)

  checkpointer = checkpoints.Checkpointer(
      os.path.join(workdir, workdir_lib.CHECKPOINTS_DIR), config.train.get("max_to_keep", 3))
  restored = checkpointer.restore_latest(state, train_rng)
  if restored is not None:
    state, train_rng = restored
    logging.info("Resumed from checkpoint at step %d.", int(state.step))
  elif objective.needs_initial_fit:
    state = objective.initial_fit(state, data_lib.make_eval_batches(
        config.data, split=config.data.get("train_split", "train")))
  start_step = int(jax.device_get(state.step))
  num_steps = config.train.num_steps

  writer = workdir_lib.MetricWriter(workdir)
  train_step = jit_train_step(objective.train_step, mesh)
  eval_fn = jit_eval_step(objective.eval_step, mesh)
  drawer = _Figures(objective, config, mesh, figure_rng)
  if jax.process_index() == 0:
    writer.write_scalars(start_step, {"model/num_params": objective.num_params(state)})

  log_every = config.train.get("log_every", 50)
  last_checkpoint = checkpointer.latest_step()
  eval_metrics: dict[str, float] = {}
  timing = {"start_step": start_step, "train_seconds": 0.0, "compile_seconds": None}

  if start_step < num_steps:
    # Resumed runs reseed the pipeline so they do not replay the first batches.
    seed = int(np.random.SeedSequence([config.seed, start_step]).generate_state(1)[0])
    train_iter: Iterator = data_lib.make_train_iterator(config.data, seed=seed)
    progress = _progress_bar(config, start_step, num_steps)
    window: list[dict[str, float]] = []
    pending = None  # Metrics of the last step, fetched one step late to keep dispatch async.
    loop_start = time.perf_counter()
    for step in range(start_step, num_steps):
      batch = shard_batch(next(train_iter), mesh)
      t0 = time.perf_counter()
      state, metrics = train_step(state, batch, train_rng)
      if timing["compile_seconds"] is None:
        jax.block_until_ready(metrics)
        timing["compile_seconds"] = time.perf_counter() - t0
      done = step + 1

      def settle(entry):
        at, device_metrics = entry
        values = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        _check_finite(at, values, objective.guarded_metrics, last_checkpoint, workdir)
        window.append(values)
        return values

      if pending is not None:
        settle(pending)
      pending = (done, metrics)
      is_last = done == num_steps
      evaluate_now = done % config.train.eval_every == 0 or is_last
      checkpoint_now = done % config.train.checkpoint_every == 0 or is_last
      if done % log_every == 0 or evaluate_now or checkpoint_now:
        latest = settle(pending)
        pending = None
        if jax.process_index() == 0:
          means = {f"train/{k}": np.mean([w[k] for w in window]) for k in window[0]}
          elapsed = time.perf_counter() - loop_start
          means["train/steps_per_sec"] = (done - start_step) / max(elapsed, 1e-9)
          writer.write_scalars(done, means)
        window.clear()
        progress.set_postfix(loss=f"{latest['loss']:.4g}", refresh=False)
      if evaluate_now:
        eval_metrics = evaluate(objective, state, config, mesh, eval_rng, eval_fn)
        writer.write_scalars(done, {f"eval/{k}": v for k, v in eval_metrics.items()})
        drawer.draw(state, workdir, done, writer)
        logging.info("Step %d eval: %s", done, eval_metrics)
      if checkpoint_now:
        # Finite metrics do not prove the *updated* state is finite: check before saving.
        if not bool(_all_finite(state)):
          _check_finite(done, {"state": float("nan")}, ("state",), last_checkpoint, workdir)
        checkpointer.save(done, state, train_rng)
        last_checkpoint = done
      progress.update(1)
    progress.close()
    timing["train_seconds"] = time.perf_counter() - loop_start
  else:
    logging.info("Checkpoint step %d >= train.num_steps=%d: nothing to train; raise "
                 "--config.train.num_steps to continue.", start_step, num_steps)

  if checkpointer.latest_step() is None:
    # E.g. a closed-form fit with train.num_steps=0: still leave a checkpoint to evaluate.
    checkpointer.save(int(jax.device_get(state.step)), state, train_rng)
  if not eval_metrics:
    eval_metrics = evaluate(objective, state, config, mesh, eval_rng, eval_fn)
    final_step = int(jax.device_get(state.step))
    # Logged like any eval, so a run without training steps (a closed-form fit) has curves.
    writer.write_scalars(final_step, {f"eval/{k}": v for k, v in eval_metrics.items()})
    drawer.draw(state, workdir, final_step, writer)
  writer.flush()
  if jax.process_index() == 0:
    records = workdir_lib.read_metrics(workdir)
    fig_dir = os.path.join(workdir, workdir_lib.FIGURES_DIR)
    figures.save_learning_curves(os.path.join(fig_dir, "learning_curves.png"), records,
                                 config.train.get("curve_metrics", ("loss",)),
                                 f"{config.model.name} on {config.data.name}")
    reporting.write_run_report(workdir, config, objective, state, eval_metrics, timing)
  checkpointer.close()
  writer.close()
  return TrainResult(state=state, objective=objective, eval_metrics=eval_metrics,
                     workdir=workdir)


def _progress_bar(config, start_step: int, num_steps: int):
  from tqdm import auto as tqdm
  enabled = config.train.get("progress_bar", True) and jax.process_index() == 0
  return tqdm.tqdm(total=num_steps, initial=start_step, disable=not enabled,
                   unit="step", mininterval=1.0, dynamic_ncols=True, desc="train")
