"""Timing helpers with no framework imports: steady-state loops and result lines."""

import json
import os
import resource
import sys
import time


def timed_loop(run_block, block: int, min_steps: int, min_seconds: float) -> tuple[int, float]:
  """Runs `run_block(block)` (which must finish its work) until both minimums are met.

  Returns:
    (steps, seconds).
  """
  steps, start = 0, time.perf_counter()
  while True:
    run_block(block)
    steps += block
    elapsed = time.perf_counter() - start
    if steps >= min_steps and elapsed >= min_seconds:
      return steps, elapsed


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
