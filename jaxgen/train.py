"""THE training loop: one for every model family.

`train_and_evaluate(config, workdir)` builds the data pipeline and the objective named by
the config, then runs jitted steps with the batch sharded over a ('data',) mesh and the
state replicated, evaluates, checkpoints, logs, draws figures and writes a report. It
never looks inside the state or branches on the family: families plug in through
`jaxgen.objectives.base.Objective`.
"""

import contextlib
import dataclasses
import math
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
from jaxgen import host_devices
from jaxgen import objectives
from jaxgen import paths
from jaxgen import preemption
from jaxgen import reporting
from jaxgen import runtime
from jaxgen import value_range
from jaxgen import workdir as workdir_lib
from jaxgen import workdir_lock
from jaxgen.evaluation import examples


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
def make_mesh(config: ml_collections.ConfigDict | None = None) -> Mesh:
  """A 1-D mesh with the axis 'data' over every device (all hosts).

  With a config, a CPU host that `host_devices.configure` split for several configs (a
  study) gives this run only its own `train.cpu_devices` share of the host devices.
  """
  devices = jax.devices()
  if config is not None:
    devices = host_devices.mesh_devices(config, devices)
  return Mesh(np.asarray(devices), ("data",))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Turns this process's numpy batch into global arrays sharded on 'data'."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def replicate(value: Any, mesh: Mesh) -> jax.Array:
  """`value` (the same on every process) as a global array replicated over the mesh.

  With several processes, jit and orbax take only global arrays, not host-local ones.
  """
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, NamedSharding(mesh, PartitionSpec()),
                                      lambda index: value[index])


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
  runtime.start_tensorflow()


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
  max_batches = _settings(config).num_eval_batches
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


def _settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.train` with the defaults of the optional fields it leaves out."""
  return config_lib.with_defaults(config.train, "train")


class _Figures:
  """Fixed inputs for figures, so grids at different steps are comparable."""

  def __init__(self, objective, config, mesh, rng):
    self.objective = objective
    self.value_range = value_range.of_data(config.data)
    # A closed-form fit (train.num_steps = 0) has no training steps to name in titles.
    self.closed_form = config.train.num_steps == 0
    self.images, _ = examples.spread_examples(
        config.data, _settings(config).num_reconstructions, per_process=False)
    self.num_samples = _settings(config).num_samples
    self.rng = rng
    replicated = NamedSharding(mesh, PartitionSpec())
    self.device_images = replicate(self.images, mesh)
    self._sample = jax.jit(objective.sample, static_argnums=2, out_shardings=replicated)
    self._reconstruct = (jax.jit(objective.reconstruct, out_shardings=replicated)
                         if isinstance(objective, objectives.Reconstructor) else None)

  def draw(self, state, workdir: str, step: int, writer: workdir_lib.MetricWriter):
    fig_dir = paths.join(workdir, workdir_lib.FIGURES_DIR)
    samples = np.asarray(jax.device_get(self._sample(state, self.rng, self.num_samples)))
    images = {"samples": figures.image_grid(samples, 8)}
    recons = (self._reconstruct(state, {"image": self.device_images}, self.rng)
              if self._reconstruct else None)
    if jax.process_index() == 0:
      figures.save_image_grid(paths.join(fig_dir, "samples.png"), samples, 8,
                              self._titled(self.objective.sample_description, step))
    if recons is not None:
      recons = np.asarray(jax.device_get(recons))
      originals = self.value_range.to_unit(self.images)
      images["reconstructions"] = figures.image_grid(
          np.concatenate([originals[:8], recons[:8]]), 8)
      if jax.process_index() == 0:
        figures.save_reconstructions(paths.join(fig_dir, "reconstructions.png"),
                                     originals, recons, 8,
                                     self._titled("test images (odd rows) and their "
                                                  "reconstructions", step))
    for stem, (extra, ncols, title) in self.objective.extra_figures(
        state, self.rng, self.images).items():
      extra = np.asarray(jax.device_get(extra))
      images[stem] = figures.image_grid(extra, ncols)
      if jax.process_index() == 0:
        figures.save_image_grid(paths.join(fig_dir, f"{stem}.png"), extra, ncols,
                                self._titled(title, step))
    writer.write_images(step, {k: v[None] for k, v in images.items()})

  def _titled(self, what: str, step: int) -> str:
    return what if self.closed_form else f"{what}, step {step}"


# ------------------------------------------------------------------ the loop
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       resume_step: int | None = None) -> TrainResult:
  """Trains the configured model, resuming from workdir's latest checkpoint.

  The run is a contract: killed anywhere (kill -9, preemption, power loss) and started
  again with the same arguments, it ends bit-identical to a run that never stopped (on
  the same device count). One process at a time may use a workdir.

  Args:
    config: an experiment config (see configs/); validated here.
    workdir: where config.json, metrics, checkpoints, figures and report.md go.
    resume_step: resume from this checkpoint step instead of the latest (e.g. to back
      up before a divergence); the newer checkpoints and metrics are set aside.

  Returns:
    The final state, the objective and the final eval metrics.

  Raises:
    ValueError / errors.ConfigError: bad config, unknown names, a workdir holding a
      different config, an image shape the model cannot take.
    errors.DatasetNotPreparedError: the dataset is not on disk and downloads are off.
    errors.WorkdirBusyError: another live process is using the workdir.
    errors.NonFiniteLossError: a NaN/Inf loss (the last good checkpoint stays).
    errors.CheckpointError: no checkpoint can be restored, or `resume_step` is absent.
    errors.TrainingInterrupted: SIGTERM/SIGINT; a checkpoint at the current step was
      saved first.
  """
  config_lib.validate(config)
  workdir = paths.resolve(workdir)
  paths.check_supported(workdir)
  _hide_accelerators_from_tf()
  # Fail fast on names and data before writing anything into the workdir.
  objective = objectives.get_objective(config)
  info = data_lib.get_dataset_info(config.data)
  mesh = make_mesh(config)
  if config.data.batch_size % mesh.devices.size:
    raise ValueError(f"data.batch_size={config.data.batch_size} must be divisible by the "
                     f"number of devices ({mesh.devices.size}).")
  with _hold_workdir(workdir):
    return _train_holding_workdir(config, workdir, objective, info, mesh, resume_step)


@contextlib.contextmanager
def _hold_workdir(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock (process 0 takes it for all processes)."""
  lock = workdir_lock.WorkdirLock(workdir) if jax.process_index() == 0 else None
  refusal = None
  if lock is not None:
    try:
      lock.acquire()
    except errors.WorkdirBusyError as e:
      refusal, lock = e, None
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    busy = multihost_utils.broadcast_one_to_all(np.int32(refusal is not None))
    if busy and refusal is None:
      refusal = errors.WorkdirBusyError(
          f"Process 0 could not take the lock of the workdir {workdir}; its log names "
          f"the run holding it.")
  if refusal is not None:
    raise refusal
  try:
    yield
  finally:
    if lock is not None:
      lock.release()


def _train_holding_workdir(config, workdir, objective, info, mesh,
                           resume_step: int | None) -> TrainResult:
  changes = workdir_lib.write_or_check_config(workdir, config)
  logging.info("Dataset %s: %s", config.data.name, info)

  root = jax.random.PRNGKey(config.seed)
  init_rng, train_rng, eval_rng, figure_rng = (
      replicate(key, mesh) for key in jax.random.split(root, 4))
  example = {"image": jnp.zeros((config.data.batch_size,) + tuple(info.image_shape), jnp.float32)}
  if info.num_classes:
    example["label"] = jnp.zeros((config.data.batch_size,), jnp.int32)
  state = init_state(objective, init_rng, example, mesh)

  checkpointer = checkpoints.Checkpointer(
      paths.join(workdir, workdir_lib.CHECKPOINTS_DIR), _settings(config).max_to_keep)
  try:
    restored = checkpointer.restore(state, train_rng, step=resume_step)
    if restored is not None:
      state, train_rng, restored_step = restored
      logging.info("Resumed from checkpoint at step %d.", restored_step)
      workdir_lib.truncate_history(workdir, restored_step)
      workdir_lib.record_config_changes(workdir, restored_step, changes)
    else:
      # Rows logged by an earlier attempt that never reached a checkpoint.
      workdir_lib.truncate_history(workdir, -1)
      if objective.needs_initial_fit:
        state = objective.initial_fit(state, data_lib.make_eval_batches(
            config.data, split=config_lib.with_defaults(config.data, "data").train_split))
    run = _Run(config, workdir, objective, mesh, checkpointer,
               rngs=(train_rng, eval_rng, figure_rng), fresh=restored is None)
    return run.finish(run.train(state))
  finally:
    checkpointer.close()


class _Run:
  """One call of the loop: trains from the state's step, then evaluates and reports."""

  def __init__(self, config, workdir, objective, mesh, checkpointer, rngs, fresh: bool):
    self.config, self.workdir, self.objective, self.mesh = config, workdir, objective, mesh
    self.checkpointer = checkpointer
    self.settings = _settings(config)
    self.train_rng, self.eval_rng, self.figure_rng = rngs
    self.fresh = fresh
    self._writer = None
    self._drawer = None
    self.eval_fn = jit_eval_step(objective.eval_step, mesh)
    self.eval_metrics: dict[str, float] = {}
    self.timing = {"start_step": None, "train_seconds": 0.0, "compile_seconds": None}

  @property
  def writer(self) -> workdir_lib.MetricWriter:
    # Made on first use, so a rerun with nothing to do adds no event file.
    if self._writer is None:
      self._writer = workdir_lib.MetricWriter(self.workdir)
    return self._writer

  @property
  def drawer(self) -> "_Figures":
    if self._drawer is None:
      self._drawer = _Figures(self.objective, self.config, self.mesh, self.figure_rng)
    return self._drawer

  def train(self, state):
    """Runs the steps from `state.step` to train.num_steps; returns the final state."""
    config, objective = self.config, self.objective
    start_step, num_steps = self._begin(state), config.train.num_steps
    if start_step >= num_steps:
      logging.info("Checkpoint step %d >= train.num_steps=%d: nothing to train; raise "
                   "--config.train.num_steps to continue.", start_step, num_steps)
      return state

    train_step = jit_train_step(objective.train_step, self.mesh)
    # Batch k depends on (seed, k) only: a resumed run sees the batches it would have.
    train_iter: Iterator = data_lib.make_train_iterator(
        config.data, seed=config.seed, start_step=start_step)
    log_every = self.settings.log_every
    window: list[dict[str, float]] = []
    pending = None  # Metrics of the last step, fetched one step late to keep dispatch async.
    loop_start = time.perf_counter()

    def settle(entry):
      at, device_metrics = entry
      values = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
      self._check_finite(at, values, objective.guarded_metrics)
      window.append(values)
      return values

    with _progress_bar(config, start_step, num_steps) as progress, \
         preemption.StopSignals() as signals:
      for step in range(start_step, num_steps):
        batch = shard_batch(next(train_iter), self.mesh)
        t0 = time.perf_counter()
        state, metrics = train_step(state, batch, self.train_rng)
        if self.timing["compile_seconds"] is None:
          jax.block_until_ready(metrics)
          self.timing["compile_seconds"] = time.perf_counter() - t0
        done = step + 1
        if pending is not None:
          settle(pending)
        pending = (done, metrics)
        is_last = done == num_steps
        evaluate_now = done % config.train.eval_every == 0 or is_last
        checkpoint_now = done % config.train.checkpoint_every == 0 or is_last
        if done % log_every == 0 or evaluate_now or checkpoint_now:
          latest = settle(pending)
          pending = None
          self._log_window(done, window, (done - start_step) / max(
              time.perf_counter() - loop_start, 1e-9))
          progress.set_postfix(loss=f"{latest['loss']:.4g}", refresh=False)
        if evaluate_now:
          self.evaluate_and_draw(state, done)
        if checkpoint_now:
          self._save(state, done)
        progress.update(1)
        stop_signal = signals.requested()
        if stop_signal and not is_last:
          progress.close()
          self._stop_for_signal(state, done, pending, settle, stop_signal)
    self.timing["train_seconds"] = time.perf_counter() - loop_start
    return state

  def _begin(self, state) -> int:
    """Records the step training starts at (and a fresh run's parameter count)."""
    start_step = int(jax.device_get(state.step))
    self.timing["start_step"] = start_step
    if self.fresh and jax.process_index() == 0:
      self.writer.write_scalars(start_step,
                                {"model/num_params": self.objective.num_params(state)})
    return start_step

  def _log_window(self, step: int, window: list[dict[str, float]],
                  steps_per_sec: float) -> None:
    """Logs the means of the train metrics since the last log, then empties `window`."""
    if jax.process_index() == 0:
      means = {f"train/{k}": np.mean([w[k] for w in window]) for k in window[0]}
      means["train/steps_per_sec"] = steps_per_sec
      self.writer.write_scalars(step, means)
    window.clear()

  def _save(self, state, step: int) -> None:
    # Finite metrics do not prove the *updated* state is finite: check before saving.
    if not bool(_all_finite(state)):
      self._check_finite(step, {"state": float("nan")}, ("state",))
    self.checkpointer.save(step, state, self.train_rng)

  def _stop_for_signal(self, state, step, pending, settle, signal_number) -> None:
    """Checkpoints `step` (unless just saved) and raises TrainingInterrupted."""
    if pending is not None:
      settle(pending)  # Never save a state that went NaN.
    if self.checkpointer.latest_step() != step:
      self._save(state, step)
    self.checkpointer.wait()
    if self._writer is not None:
      self._writer.flush()
    name = preemption.signal_name(signal_number)
    raise errors.TrainingInterrupted(
        f"{name} received: saved a checkpoint at step {step} in "
        f"{self.checkpointer.directory}. Rerun the same command to resume.",
        signal_number, step)

  def _check_finite(self, step: int, metrics: dict[str, float],
                    guarded: tuple[str, ...]) -> None:
    for name in guarded:
      if name in metrics and not math.isfinite(metrics[name]):
        raise errors.NonFiniteLossError(_divergence_message(
            self.config, step, "the updated training state" if name == "state"
            else f"train/{name}", metrics[name], self.checkpointer))

  def evaluate_and_draw(self, state, step: int) -> None:
    """Evaluates on the eval split, logs the metrics and draws the figures."""
    self.eval_metrics = evaluate(self.objective, state, self.config, self.mesh,
                                 self.eval_rng, self.eval_fn)
    self.writer.write_scalars(step, {f"eval/{k}": v for k, v in self.eval_metrics.items()})
    self.drawer.draw(state, self.workdir, step, self.writer)
    logging.info("Step %d eval: %s", step, ", ".join(
        f"{name} {value:.4g}" for name, value in sorted(self.eval_metrics.items())))

  def finish(self, state) -> TrainResult:
    """Final checkpoint, eval and report; a finished run rerun changes nothing."""
    final_step = int(jax.device_get(state.step))
    if self.checkpointer.latest_step() is None:
      # E.g. a closed-form fit with train.num_steps=0: still leave a checkpoint to evaluate.
      self.checkpointer.save(final_step, state, self.train_rng)
    report_path = paths.join(self.workdir, reporting.REPORT_FILE)
    logged = _eval_metrics_logged_at(self.workdir, final_step)
    if not self.eval_metrics and logged and paths.exists(report_path):
      # Nothing was trained and the run's results are all written: leave them.
      self.checkpointer.wait()
      return TrainResult(state=state, objective=self.objective, eval_metrics=logged,
                         workdir=self.workdir)
    if not self.eval_metrics:
      # Logged like any eval, so a run without training steps (a closed-form fit) has curves.
      self.evaluate_and_draw(state, final_step)
    self.writer.flush()
    if jax.process_index() == 0:
      if self.config.train.num_steps > 0:
        # A closed-form fit has one evaluation, which report.md's table shows: no curve.
        fig_dir = paths.join(self.workdir, workdir_lib.FIGURES_DIR)
        figures.save_learning_curves(
            paths.join(fig_dir, "learning_curves.png"), workdir_lib.read_metrics(self.workdir),
            self.settings.curve_metrics, f"{self.config.model.name} on {self.config.data.name}")
      reporting.write_run_report(self.workdir, self.config, self.objective, state,
                                 self.eval_metrics, self.timing)
    self.checkpointer.wait()
    self.writer.close()
    return TrainResult(state=state, objective=self.objective,
                       eval_metrics=self.eval_metrics, workdir=self.workdir)


def _eval_metrics_logged_at(workdir: str, step: int) -> dict[str, float]:
  """The eval/* metrics metrics.jsonl holds for `step` ({} if none)."""
  for record in workdir_lib.read_metrics(workdir):
    if record["step"] == step:
      return {k[len("eval/"):]: v for k, v in record.items() if k.startswith("eval/")}
  return {}


def _divergence_message(config, step: int, label: str, value: float,
                        checkpointer: checkpoints.Checkpointer) -> str:
  """Says what went non-finite and the commands that recover the run."""
  lr = config.optimizer.learning_rate
  advice = (f"--config.optimizer.learning_rate={lr / 10:g} (now {lr:g}) and/or "
            f"--config.optimizer.grad_clip_norm=1.0")
  steps = checkpointer.all_steps()
  if not steps:
    return (f"Step {step}: {label} is {value}. Training stopped. No checkpoint had been "
            f"written yet, so rerunning starts again from step 0: rerun with {advice}.")
  return (f"Step {step}: {label} is {value}. Training stopped. The last good checkpoint "
          f"(step {steps[-1]}) in {checkpointer.directory} is kept. Rerun the same command "
          f"with {advice}: it resumes from step {steps[-1]} with the new values. To go "
          f"back further, add --resume_step=N (checkpoints: {steps}).")


@contextlib.contextmanager
def _progress_bar(config, start_step: int, num_steps: int) -> Iterator[Any]:
  """A tqdm bar over the steps; log lines meanwhile are printed above it, not through it."""
  from tqdm import auto as tqdm
  enabled = _settings(config).progress_bar and jax.process_index() == 0
  bar = tqdm.tqdm(total=num_steps, initial=start_step, disable=not enabled,
                  unit="step", mininterval=1.0, dynamic_ncols=True, desc="train")
  handler = logging.get_absl_handler().python_handler
  log_stream = handler.stream
  if enabled:
    handler.stream = _AboveProgressBar(tqdm.tqdm, log_stream)
  try:
    yield bar
  finally:
    handler.stream = log_stream
    bar.close()


class _AboveProgressBar:
  """A stream for log lines that clears the progress bar, writes, and redraws it."""

  def __init__(self, tqdm_class, stream):
    self._tqdm_class, self._stream = tqdm_class, stream

  def write(self, text: str) -> None:
    self._tqdm_class.write(text, file=self._stream, end="")

  def flush(self) -> None:
    self._stream.flush()
