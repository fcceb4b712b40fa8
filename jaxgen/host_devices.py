"""Data parallelism over CPU cores: how many XLA host devices, chosen before JAX starts.

On a CPU-only machine XLA runs one host device whose ops use every core. Splitting the
host into N devices (`--xla_force_host_platform_device_count=N`) makes the training loop's
'data' mesh shard each global batch over them, like a GPU host's devices: on 2 cores a
conv VAE step took 0.110 instead of 0.137 CPU seconds, 1.26x the steps/s, while a DCGAN
(23.7M parameters, a gradient all-reduce per step) got slower. So the count is a config
field, `train.cpu_devices`, set per config where the benchmark shows it pays.

The flag only exists before JAX initialises its backends, so `configure` runs before
`import jax` (the command lines call it first thing). The count actually used is the
largest one that is at most `train.cpu_devices`, at most the usable cores, and divides
`data.batch_size`, so every device gets the same share. A user's own XLA_FLAGS naming the
flag wins. Accelerator hosts are unaffected: the flag only splits the CPU platform, and the
mesh is built from the default (accelerator) devices. Results do not depend on the count
(`tests/test_multidevice.py`).

Jax-free: importing this module imports no JAX.
"""

import os
import sys

import ml_collections

from jaxgen import config_lib

FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> int:
  """Cores this process may run on (its CPU affinity where the OS reports it)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # macOS, Windows.
    return os.cpu_count() or 1


def device_count(requested: int, batch_size: int, cores: int) -> int:
  """The largest count <= requested and <= cores that divides batch_size (>= 1)."""
  for count in range(max(1, min(requested, cores)), 0, -1):
    if batch_size % count == 0:
      return count
  return 1


def configure(config: ml_collections.ConfigDict, cores: int | None = None) -> int | None:
  """Sets XLA_FLAGS for the config's `train.cpu_devices` before JAX is imported.

  Args:
    config: the run's config (train.cpu_devices, data.batch_size).
    cores: usable cores (default `usable_cores()`).

  Returns:
    The host device count set, or None when nothing was set: one device asked for or
    possible, the flag already in XLA_FLAGS (the user's choice wins), or JAX already
    imported (too late; the process keeps the devices it has).
  """
  requested = config_lib.with_defaults(config.train, "train").cpu_devices
  count = device_count(requested, config_lib.with_defaults(config.data, "data").batch_size,
                       usable_cores() if cores is None else cores)
  flags = os.environ.get("XLA_FLAGS", "")
  if count <= 1 or FLAG in flags or "jax" in sys.modules:
    return None
  os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
  return count
