"""Timing helpers with no framework imports: steady-state loops and result lines."""

import json
import os
import resource
import sys
import time


def cpu_seconds() -> float:
  """User + system CPU time of this process, all threads."""
  times = os.times()
  return times.user + times.system


def timed_loop(run_block, block: int, min_steps: int,
               min_seconds: float) -> tuple[int, float, float]:
  """Runs `run_block(block)` (which must finish its work) until both minimums are met.

  Returns:
    (steps, wall seconds, CPU seconds of this process). On a machine shared with other
    work, CPU seconds per step move less with the load than wall time does (spin-waiting
    thread pools still inflate them).
  """
  steps, start, cpu_start = 0, time.perf_counter(), cpu_seconds()
  while True:
    run_block(block)
    steps += block
    elapsed = time.perf_counter() - start
    if steps >= min_steps and elapsed >= min_seconds:
      return steps, elapsed, cpu_seconds() - cpu_start


def peak_rss_mb() -> float:
  """Peak resident memory of this process in MiB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(result: dict) -> None:
  """Prints one `RESULT {json}` line for benchmarks.run to collect."""
  result.setdefault("peak_rss_mb", peak_rss_mb())
  try:
    result.setdefault("loadavg1", os.getloadavg()[0])
  except OSError:
    pass
  sys.stdout.write("RESULT " + json.dumps(result) + "\n")
  sys.stdout.flush()
