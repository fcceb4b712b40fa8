"""Times one jaxgen train step (steady state after compile); prints a RESULT line.

usage: python -m benchmarks.jax_worker NAME [--min-seconds S] [--trace-dir DIR]
                                          [--cpu-devices N]
       python -m benchmarks.jax_worker matmul        # float32 matmul peak
       python -m benchmarks.jax_worker pipeline:NAME # input pipeline examples/s
The step is the one the training loop runs: `jaxgen.train.jit_train_step` over the
objective of the model's config, with the state donated and the batch on the mesh. As in
the command line, the host is split into the config's `train.cpu_devices` XLA devices
(`jaxgen.host_devices`; --cpu-devices overrides) before JAX starts.

A model's RESULT holds: task, framework ("jaxgen"), steps_per_s, images_per_s,
cpu_s_per_step (process CPU seconds per step, all threads), compile_s (lower + XLA
compile of the step), flops_per_step (XLA's cost analysis of one device's program times
the devices), gflops_per_s, num_params
(the objective's `num_params`, as the report quotes it), batch_size, device, num_devices,
xla_flags
(the XLA_FLAGS the step compiled with), peak_rss_mb and loadavg1 (the machine's 1-minute
load when the measurement ended).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import specs  # noqa: E402
from benchmarks import timing  # noqa: E402
from jaxgen import host_devices  # noqa: E402

# JAX is imported in the functions: the host device count must be set before it starts.

MATMUL_N = 2048
TRACE_STEPS = 3


def _flops(compiled) -> float | None:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def bench_matmul(min_seconds: float) -> dict:
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.PRNGKey(0), (MATMUL_N, MATMUL_N), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  steps, seconds, _ = timing.timed_loop(
      lambda n: [matmul(a) for _ in range(n)][-1].block_until_ready(), 2, 10, min_seconds)
  return {"task": "matmul", "gflops_per_s": 2 * MATMUL_N**3 * steps / seconds / 1e9}


def bench_pipeline(name: str, min_seconds: float) -> dict:
  from jaxgen import config_lib
  from jaxgen import data as data_lib
  spec = specs.SPECS[name]
  config = config_lib.load(os.path.join(specs.REPO, spec.config))
  config.data.name = spec.dataset
  config.data.batch_size = spec.batch_size
  iterator = data_lib.make_train_iterator(config.data, seed=0)
  for _ in range(20):
    next(iterator)
  steps, seconds, _ = timing.timed_loop(lambda n: [next(iterator) for _ in range(n)], 10, 50,
                                        min_seconds)
  return {"task": f"pipeline:{name}", "examples_per_s": steps * spec.batch_size / seconds}


def bench_model(name: str, config, min_seconds: float, trace_dir: str | None = None) -> dict:
  import jax
  from jaxgen import objectives
  from jaxgen import train
  spec = specs.SPECS[name]
  objective = objectives.get_objective(config)
  mesh = train.make_mesh(config)
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(-1, 1, (spec.batch_size,) + spec.image_shape).astype(np.float32),
           "label": rng.integers(0, spec.num_classes, spec.batch_size).astype(np.int32)}
  if config.data.get("preprocessing", "unit") != "symmetric":
    batch["image"] = (batch["image"] + 1) / 2
  state = train.init_state(objective, jax.random.PRNGKey(0), batch, mesh)
  num_params = objective.num_params(state)
  sharded = train.shard_batch(batch, mesh)
  key = jax.random.PRNGKey(1)
  step = train.jit_train_step(objective.train_step, mesh)
  start = time.perf_counter()
  compiled = step.lower(state, sharded, key).compile()
  compile_s = time.perf_counter() - start
  # Cost analysis of the partitioned program counts one device's FLOPs.
  device_flops = _flops(compiled)
  flops = device_flops * mesh.devices.size if device_flops else None
  holder = {"state": state}

  def run_block(n):
    for _ in range(n):
      holder["state"], metrics = compiled(holder["state"], sharded, key)
    jax.block_until_ready(metrics)

  run_block(3)  # Warm-up: first calls allocate buffers.
  steps, seconds, cpu = timing.timed_loop(run_block, 5, 10, min_seconds)
  steps_per_s = steps / seconds
  if trace_dir:
    # After the timing, so the profiler costs it nothing: a Perfetto trace with one event
    # per XLA op (thunk) of TRACE_STEPS steps, and the step's HLO to name them
    # (benchmarks.profile reads both).
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    run_block(TRACE_STEPS)
    jax.profiler.stop_trace()
    with open(os.path.join(trace_dir, "step.hlo.txt"), "w") as f:
      f.write(compiled.as_text())
  return {"task": name, "framework": "jaxgen", "steps_per_s": steps_per_s,
          "images_per_s": steps_per_s * spec.batch_size, "cpu_s_per_step": cpu / steps,
          "compile_s": compile_s,
          "flops_per_step": flops,
          "gflops_per_s": flops * steps_per_s / 1e9 if flops else None,
          "num_params": num_params, "batch_size": spec.batch_size,
          "device": jax.devices()[0].device_kind, "num_devices": mesh.devices.size,
          "trace_steps": TRACE_STEPS if trace_dir else 0,
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("task")
  parser.add_argument("--min-seconds", type=float, default=5.0)
  parser.add_argument("--trace-dir", default=None,
                      help="model tasks: also write a jax.profiler trace of 3 steps here")
  parser.add_argument("--with-peak", action="store_true",
                      help="model tasks: also measure the matmul peak afterwards, in the "
                           "same process (peak_gflops_per_s)")
  parser.add_argument("--cpu-devices", type=int, default=None,
                      help="model tasks: XLA host devices (default the config's "
                           "train.cpu_devices)")
  args = parser.parse_args()
  if args.task == "matmul":
    timing.emit(bench_matmul(args.min_seconds))
  elif args.task.startswith("pipeline:"):
    timing.emit(bench_pipeline(args.task.split(":", 1)[1], args.min_seconds))
  elif args.task in specs.SPECS:
    config = specs.load_config(args.task)
    if args.cpu_devices is not None:
      config.train.cpu_devices = args.cpu_devices
    host_devices.configure(config)
    result = bench_model(args.task, config, args.min_seconds, args.trace_dir)
    if args.with_peak:
      result["peak_gflops_per_s"] = bench_matmul(args.min_seconds)["gflops_per_s"]
    timing.emit(result)
  else:
    parser.error(f"unknown task {args.task!r}; known: matmul, pipeline:NAME or one of "
                 f"{', '.join(specs.SPECS)}")


if __name__ == "__main__":
  main()
