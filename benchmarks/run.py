"""Benchmark table: jaxgen train steps vs PyTorch eager, interleaved in one run.

usage: python -m benchmarks.run [--models mlp_vae conv_vae_a ...] [--reps 3] [--min-seconds 5]
                                [--xla-flags=FLAGS] [--no-pipeline] [--out PATH]

Each measurement is a fresh process (no framework shares threads or caches with another),
and the reps loop is outermost, alternating which framework goes first, so drift in the
machine's speed hits both. Prints a table and writes benchmarks/results.json with, per
model: jaxgen_steps_per_s, torch_steps_per_s (null without PyTorch), ratio, gflops_per_s,
peak_gflops_per_s (float32 matmul measured in the same run), compile_s, peak_rss_mb, the
parameter counts of both networks (params_match is false, with a warning, when they
differ: the PyTorch network would then not be jaxgen's architecture), the machine's load
during the runs, plus the input pipeline's examples/s against what the step consumes.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Sequence

from benchmarks import specs

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(worker: str, task: str, min_seconds: float,
            xla_flags: str | None = None, extra_args: Sequence[str] = (),
            core: int | None = None) -> dict | None:
  """Runs one worker process; returns its RESULT dict, or None (with the error shown).

  `xla_flags`, when given, replaces XLA_FLAGS in the worker's environment. `core` pins
  the worker to that one core (taskset): PyTorch then runs one thread, XLA one worker.
  """
  cmd = [sys.executable, "-m", f"benchmarks.{worker}", task, "--min-seconds", str(min_seconds),
         *extra_args]
  if core is not None:
    cmd = ["taskset", "-c", str(core), *cmd]
  env = dict(os.environ)
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  out = subprocess.run(cmd, cwd=specs.REPO, capture_output=True, text=True, env=env)
  for line in out.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  print(f"  {worker} {task} failed:\n{out.stderr[-1500:]}", file=sys.stderr)
  return None


def median(values):
  """Median of the values that are not None; None when there are none."""
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def _single(values, what: str, model: str) -> int | None:
  """The one value all runs agree on (None without runs); disagreement is a bug."""
  distinct = sorted({v for v in values if v is not None})
  if len(distinct) > 1:
    raise RuntimeError(f"{model}: runs report different {what}: {distinct}.")
  return distinct[0] if distinct else None


def model_entry(model: str, jax_runs: list, torch_runs: list, peak: float | None,
                pipeline: dict | None, jax_core_runs: Sequence = (),
                torch_core_runs: Sequence = (), core_peak: float | None = None) -> dict:
  """One model's results.json entry from its RESULT dicts (failed runs are None).

  `*_core_runs` are the runs pinned to one core (`--per-core`), `core_peak` the matmul
  peak of one core. Fields without a measurement (no PyTorch, a failed worker) are None.
  """
  jax_runs = [r for r in jax_runs if r]
  torch_runs = [r for r in torch_runs if r]
  jax_core = median([r and r.get("cpu_s_per_step") for r in jax_core_runs])
  torch_core = median([r and r.get("cpu_s_per_step") for r in torch_core_runs])
  core_gflops = median([r and r.get("gflops_per_s") for r in jax_core_runs])
  batch_size = specs.SPECS[model].batch_size
  jax_sps = median([r["steps_per_s"] for r in jax_runs])
  torch_sps = median([r["steps_per_s"] for r in torch_runs])
  jax_params = _single([r.get("num_params") for r in jax_runs], "num_params", model)
  torch_params = _single([r.get("num_params") for r in torch_runs], "num_params", model)
  pipe_rate = pipeline["examples_per_s"] if pipeline else None
  return {
      "jaxgen_steps_per_s": jax_sps,
      "torch_steps_per_s": torch_sps,
      "ratio": jax_sps / torch_sps if jax_sps and torch_sps else None,
      # CPU seconds per step (all threads): less sensitive than steps/s to other load.
      "jaxgen_cpu_s_per_step": median([r.get("cpu_s_per_step") for r in jax_runs]),
      "torch_cpu_s_per_step": median([r.get("cpu_s_per_step") for r in torch_runs]),
      "gflops_per_s": median([r.get("gflops_per_s") for r in jax_runs]),
      "peak_gflops_per_s": peak,
      "compile_s": median([r["compile_s"] for r in jax_runs]),
      "peak_rss_mb": max([r["peak_rss_mb"] for r in jax_runs], default=None),
      "torch_peak_rss_mb": max([r["peak_rss_mb"] for r in torch_runs], default=None),
      "batch_size": batch_size,
      "jaxgen_num_params": jax_params,
      "torch_num_params": torch_params,
      "params_match": (jax_params == torch_params
                       if jax_params is not None and torch_params is not None else None),
      "pipeline_examples_per_s": pipe_rate,
      "pipeline_over_step": (pipe_rate / (jax_sps * batch_size)
                             if pipe_rate and jax_sps else None),
      "loadavg1": median([r.get("loadavg1") for r in jax_runs + torch_runs]),
      "jaxgen_runs": [r["steps_per_s"] for r in jax_runs],
      "torch_runs": [r["steps_per_s"] for r in torch_runs],
      "jaxgen_xla_flags": _single([r.get("xla_flags") for r in jax_runs], "xla_flags", model),
      "jaxgen_num_devices": _single([r.get("num_devices") for r in jax_runs], "num_devices",
                                    model),
      # One core each: process CPU seconds per step; core_ratio > 1 means jaxgen is faster.
      "jaxgen_core_cpu_s_per_step": jax_core,
      "torch_core_cpu_s_per_step": torch_core,
      "core_ratio": torch_core / jax_core if jax_core and torch_core else None,
      "core_gflops_per_s": core_gflops,
      "core_peak_gflops_per_s": core_peak,
  }


def param_warnings(results: dict) -> list[str]:
  """One line per model whose PyTorch network has another parameter count than jaxgen's."""
  return [f"WARNING: {model}: jaxgen has {e['jaxgen_num_params']:,} parameters but the "
          f"PyTorch counterpart {e['torch_num_params']:,}; the architectures differ, so "
          f"the ratio compares different networks (fix benchmarks/torch_worker.py)."
          for model, e in results["models"].items() if e["params_match"] is False]


def assemble(models: list[str], runs: dict, peaks: list, pipelines: dict,
             machine: str, reps: int, core_peaks: Sequence = ()) -> dict:
  """The results.json content.

  Args:
    models: benchmark names, in table order.
    runs: {model: {"jax": [RESULT or None, ...], "torch": [...]}}; "torch" may be
      missing or empty (PyTorch not installed).
    peaks: matmul RESULTs (or None), one per rep.
    pipelines: {model: pipeline RESULT or None}.
    machine: description of the CPU.
    reps: repetitions asked for.
    core_peaks: matmul RESULTs on one core (`--per-core`), one per rep.
  """
  peak = median([p and p["gflops_per_s"] for p in peaks])
  core_peak = median([p and p["gflops_per_s"] for p in core_peaks])
  results = {"machine": machine, "reps": reps, "peak_gflops_per_s": peak,
             "core_peak_gflops_per_s": core_peak, "models": {}}
  for model in models:
    results["models"][model] = model_entry(
        model, runs[model].get("jax", []), runs[model].get("torch", []), peak,
        pipelines.get(model), runs[model].get("jax_core", []),
        runs[model].get("torch_core", []), core_peak)
  results["warnings"] = param_warnings(results)
  return results


def format_table(results: dict) -> str:
  """The printed table; '-' marks a missing value."""
  fmt = lambda v, spec: format(v, spec) if v is not None else "-"
  peak = results["peak_gflops_per_s"]
  core_peak = results.get("core_peak_gflops_per_s")
  lines = [f"{results['machine']}; float32 matmul peak {fmt(peak, '.0f')} GFLOP/s, one core "
           f"{fmt(core_peak, '.0f')}",
           f"{'model':15s} {'jaxgen st/s':>11s} {'torch st/s':>10s} {'ratio':>6s} "
           f"{'GFLOP/s':>8s} {'% peak':>6s} {'1-core CPU s':>13s} {'ratio':>6s} "
           f"{'% peak':>6s} {'devs':>4s} {'compile s':>9s} {'RSS MB':>7s} "
           f"{'pipe x':>7s} {'params':>11s} {'load':>5s}"]
  for model, e in results["models"].items():
    gflops, core_gflops = e["gflops_per_s"], e.get("core_gflops_per_s")
    params = fmt(e["jaxgen_num_params"], ",d")
    if e["params_match"] is False:
      params += "!"
    core_s = (f"{fmt(e.get('jaxgen_core_cpu_s_per_step'), '.3f')}/"
              f"{fmt(e.get('torch_core_cpu_s_per_step'), '.3f')}")
    lines.append(
        f"{model:15s} {fmt(e['jaxgen_steps_per_s'], '11.2f')} "
        f"{fmt(e['torch_steps_per_s'], '10.2f')} {fmt(e['ratio'], '6.2f')} "
        f"{fmt(gflops, '8.1f')} {fmt(gflops and peak and 100 * gflops / peak, '6.0f')} "
        f"{core_s:>13s} {fmt(e.get('core_ratio'), '6.2f')} "
        f"{fmt(core_gflops and core_peak and 100 * core_gflops / core_peak, '6.0f')} "
        f"{fmt(e.get('jaxgen_num_devices'), '4d')} "
        f"{fmt(e['compile_s'], '9.2f')} {fmt(e['peak_rss_mb'], '7.0f')} "
        f"{fmt(e['pipeline_over_step'], '7.0f')} {params:>11s} {fmt(e['loadavg1'], '5.1f')}")
  lines.extend(results["warnings"])
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="*", default=None,
                      help=f"default: all available of {', '.join(specs.SPECS)}")
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--min-seconds", type=float, default=5.0)
  parser.add_argument("--no-pipeline", action="store_true",
                      help="skip the input pipeline measurements")
  parser.add_argument("--xla-flags", default=None,
                      help="XLA_FLAGS for the jaxgen workers (default: the environment's), "
                           "e.g. --xla-flags=--xla_cpu_experimental_ynn_fusion_type="
                           "-individual_convolution")
  parser.add_argument("--cpu-devices", type=int, default=None,
                      help="XLA host devices of the jaxgen workers (default: each config's "
                           "train.cpu_devices; never more than the cores or than divide the "
                           "batch)")
  parser.add_argument("--per-core", action="store_true",
                      help="also time both frameworks pinned to one core (taskset; jaxgen "
                           "on one device), in the same interleaved reps")
  parser.add_argument("--out", default=os.path.join(HERE, "results.json"))
  args = parser.parse_args()
  device_args = [] if args.cpu_devices is None else ["--cpu-devices", str(args.cpu_devices)]
  models = args.models or specs.available()
  unknown = [m for m in models if m not in specs.SPECS]
  if unknown:
    parser.error(f"unknown model(s) {unknown}; known: {', '.join(specs.SPECS)}")
  has_torch = importlib.util.find_spec("torch") is not None
  if not has_torch:
    print("PyTorch is not installed: torch columns stay empty "
          "(pip install torch==2.13.0 for the CPU wheel).")

  core = max(os.sched_getaffinity(0)) if args.per_core else None
  runs: dict[str, dict[str, list]] = {
      m: {"jax": [], "torch": [], "jax_core": [], "torch_core": []} for m in models}
  peaks, core_peaks, pipelines = [], [], {}
  for rep in range(args.reps):
    print(f"rep {rep + 1}/{args.reps}", flush=True)
    peaks.append(measure("jax_worker", "matmul", args.min_seconds, args.xla_flags))
    if core is not None:
      core_peaks.append(measure("jax_worker", "matmul", args.min_seconds, args.xla_flags,
                                core=core))
    for model in models:
      order = ["jax", "torch"] if rep % 2 == 0 else ["torch", "jax"]
      if core is not None:
        order += [f"{framework}_core" for framework in order]
      for kind in order:
        framework, pinned = kind.split("_")[0], kind.endswith("_core")
        if framework == "torch" and not has_torch:
          continue
        if framework == "jax":
          result = measure("jax_worker", model, args.min_seconds, args.xla_flags,
                           ["--cpu-devices", "1"] if pinned else device_args,
                           core=core if pinned else None)
        else:
          result = measure("torch_worker", model, args.min_seconds,
                           core=core if pinned else None)
        runs[model][kind].append(result)
        if result:
          print(f"  {model:15s} {kind:10s} {result['steps_per_s']:8.2f} steps/s "
                f"{result.get('cpu_s_per_step', float('nan')):7.3f} CPU s/step "
                f"(load {result.get('loadavg1', float('nan')):.1f})", flush=True)
  if not args.no_pipeline:
    for model in models:
      if specs.SPECS[model].dataset:
        pipelines[model] = measure("jax_worker", f"pipeline:{model}", args.min_seconds,
                                   args.xla_flags)

  results = assemble(models, runs, peaks, pipelines, f"{cpu_name()}, {os.cpu_count()} cores",
                     args.reps, core_peaks)
  results["xla_flags"] = (args.xla_flags if args.xla_flags is not None
                          else os.environ.get("XLA_FLAGS", ""))
  print("\n" + format_table(results))
  with open(args.out, "w") as f:
    json.dump(results, f, indent=2)
  print(f"\nwrote {args.out}")


if __name__ == "__main__":
  main()
