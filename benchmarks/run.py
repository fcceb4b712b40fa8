"""Benchmark table: jaxgen train steps vs PyTorch eager, interleaved in one run.

usage: python -m benchmarks.run [--models mlp_vae conv_vae_a ...] [--reps 3] [--min-seconds 5]

Each measurement is a fresh process (no framework shares threads or caches with another),
and the reps loop is outermost, alternating which framework goes first, so drift in the
machine's speed hits both. Prints a table and writes benchmarks/results.json with, per
model: jaxgen_steps_per_s, torch_steps_per_s (null without PyTorch), ratio, gflops_per_s,
peak_gflops_per_s (float32 matmul measured in the same run), compile_s, peak_rss_mb, plus
the input pipeline's examples/s against what the step consumes.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

from benchmarks import specs

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(worker: str, task: str, min_seconds: float) -> dict | None:
  """Runs one worker process; returns its RESULT dict, or None (with the error shown)."""
  cmd = [sys.executable, "-m", f"benchmarks.{worker}", task, "--min-seconds", str(min_seconds)]
  out = subprocess.run(cmd, cwd=specs.REPO, capture_output=True, text=True)
  for line in out.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  print(f"  {worker} {task} failed:\n{out.stderr[-1500:]}", file=sys.stderr)
  return None


def median(values):
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="*", default=None,
                      help=f"default: all available of {', '.join(specs.SPECS)}")
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--min-seconds", type=float, default=5.0)
  parser.add_argument("--out", default=os.path.join(HERE, "results.json"))
  args = parser.parse_args()
  models = args.models or specs.available()
  unknown = [m for m in models if m not in specs.SPECS]
  if unknown:
    parser.error(f"unknown model(s) {unknown}; known: {', '.join(specs.SPECS)}")
  has_torch = importlib.util.find_spec("torch") is not None
  if not has_torch:
    print("PyTorch is not installed: torch columns stay empty "
          "(pip install torch==2.13.0 for the CPU wheel).")

  runs: dict[str, dict[str, list]] = {m: {"jax": [], "torch": []} for m in models}
  peaks, pipelines = [], {}
  for rep in range(args.reps):
    print(f"rep {rep + 1}/{args.reps}", flush=True)
    peaks.append(measure("jax_worker", "matmul", args.min_seconds))
    for model in models:
      order = ["jax", "torch"] if rep % 2 == 0 else ["torch", "jax"]
      for framework in order:
        if framework == "torch" and not has_torch:
          continue
        worker = "jax_worker" if framework == "jax" else "torch_worker"
        result = measure(worker, model, args.min_seconds)
        runs[model][framework].append(result)
        if result:
          print(f"  {model:12s} {framework:6s} {result['steps_per_s']:8.2f} steps/s", flush=True)
  for model in models:
    dataset = specs.SPECS[model].dataset
    if dataset:
      pipelines[model] = measure("jax_worker", f"pipeline:{model}", args.min_seconds)

  peak = median([p and p["gflops_per_s"] for p in peaks])
  results = {"machine": f"{cpu_name()}, {os.cpu_count()} cores", "reps": args.reps,
             "peak_gflops_per_s": peak, "models": {}}
  header = (f"{'model':12s} {'jaxgen st/s':>11s} {'torch st/s':>10s} {'ratio':>6s} "
            f"{'GFLOP/s':>8s} {'% peak':>6s} {'compile s':>9s} {'RSS MB':>7s} {'pipe x':>7s}")
  print(f"\n{results['machine']}; float32 matmul peak {peak:.0f} GFLOP/s\n{header}")
  for model in models:
    jax_runs = [r for r in runs[model]["jax"] if r]
    torch_runs = [r for r in runs[model]["torch"] if r]
    jax_sps = median([r["steps_per_s"] for r in jax_runs])
    torch_sps = median([r["steps_per_s"] for r in torch_runs])
    gflops = median([r.get("gflops_per_s") for r in jax_runs])
    pipe = pipelines.get(model)
    pipe_ratio = (pipe["examples_per_s"] / (jax_sps * specs.SPECS[model].batch_size)
                  if pipe and jax_sps else None)
    entry = {
        "jaxgen_steps_per_s": jax_sps,
        "torch_steps_per_s": torch_sps,
        "ratio": jax_sps / torch_sps if jax_sps and torch_sps else None,
        "gflops_per_s": gflops,
        "peak_gflops_per_s": peak,
        "compile_s": median([r["compile_s"] for r in jax_runs]),
        "peak_rss_mb": max([r["peak_rss_mb"] for r in jax_runs], default=None),
        "batch_size": specs.SPECS[model].batch_size,
        "pipeline_examples_per_s": pipe and pipe["examples_per_s"],
        "pipeline_over_step": pipe_ratio,
        "jaxgen_runs": [r["steps_per_s"] for r in jax_runs],
        "torch_runs": [r["steps_per_s"] for r in torch_runs],
    }
    results["models"][model] = entry
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    print(f"{model:12s} {fmt(jax_sps, '11.2f')} {fmt(torch_sps, '10.2f')} "
          f"{fmt(entry['ratio'], '6.2f')} {fmt(gflops, '8.1f')} "
          f"{fmt(gflops and peak and 100 * gflops / peak, '6.0f')} "
          f"{fmt(entry['compile_s'], '9.2f')} {fmt(entry['peak_rss_mb'], '7.0f')} "
          f"{fmt(pipe_ratio, '7.0f')}")
  with open(args.out, "w") as f:
    json.dump(results, f, indent=2)
  print(f"\nwrote {args.out}")


if __name__ == "__main__":
  main()
