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

XLA:CPU flags that pay (`cpu_flags`): YNN_CONV_FLAG sends convolutions back from the
YNNPACK fusion to XLA's own convolution runtime, which measured faster for every
benchmarked conv model (benchmarks/README.md). The flag is experimental: a jaxlib that does
not know it aborts at start-up, so it is only added after a probe in a child process
accepted it, cached per jaxlib version (`xla_accepts`).

Jax-free: importing this module imports no JAX.
"""

import functools
import importlib.metadata
import json
import os
import subprocess
import sys

import ml_collections

from jaxgen import config_lib

FLAG = "--xla_force_host_platform_device_count"
YNN_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"

# The count `configure` split this process into (None: the user's XLA_FLAGS or one device).
_configured_count: int | None = None


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


def config_device_count(config: ml_collections.ConfigDict, cores: int) -> int:
  """`device_count` for a config's `train.cpu_devices` and `data.batch_size`."""
  return device_count(config_lib.with_defaults(config.train, "train").cpu_devices,
                      config_lib.with_defaults(config.data, "data").batch_size, cores)


def _cache_path() -> str:
  cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
  return os.path.join(cache_home, "jaxgen", "xla_flags.json")


@functools.lru_cache(maxsize=None)
def xla_accepts(flag: str) -> bool:
  """Whether the installed jaxlib starts with `flag` in XLA_FLAGS.

  Probed once per jaxlib version in a child process (an unknown flag aborts the process
  that reads it) and cached in ~/.cache/jaxgen/xla_flags.json; an unwritable cache only
  means probing again next time.
  """
  try:
    key = f"jaxlib {importlib.metadata.version('jaxlib')} {flag}"
  except importlib.metadata.PackageNotFoundError:
    return False
  path = _cache_path()
  try:
    with open(path) as f:
      cache = json.load(f)
  except (OSError, ValueError):
    cache = {}
  if key in cache:
    return bool(cache[key])
  env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  try:
    probe = subprocess.run(
        [sys.executable, "-c", "import jax; jax.numpy.zeros(1).block_until_ready()"],
        env=env, capture_output=True, timeout=120)
    accepted = probe.returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False  # Not cached: a slow machine may answer next time.
  cache[key] = accepted
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
      json.dump(cache, f, indent=1)
    os.replace(path + ".tmp", path)
  except OSError:
    pass
  return accepted


def cpu_flags(existing: str) -> list[str]:
  """The XLA:CPU flags jaxgen adds to `existing` XLA_FLAGS: YNN_CONV_FLAG where accepted.

  A flag whose name `existing` already sets is left to the user.
  """
  name = YNN_CONV_FLAG.split("=", 1)[0]
  if name in existing or os.environ.get("JAXGEN_XLA_CPU_FLAGS", "1") == "0":
    return []
  return [YNN_CONV_FLAG] if xla_accepts(YNN_CONV_FLAG) else []


def configure(*configs: ml_collections.ConfigDict, cores: int | None = None) -> int | None:
  """Sets XLA_FLAGS for the configs' `train.cpu_devices` before JAX is imported.

  A process that trains several configs gets the largest of their counts; each run's
  mesh then uses its own share of those devices (`mesh_devices`).

  Args:
    *configs: the configs the process will train (train.cpu_devices, data.batch_size).
    cores: usable cores (default `usable_cores()`).

  Returns:
    As `configure_count`.
  """
  cores = usable_cores() if cores is None else cores
  return configure_count(max((config_device_count(c, cores) for c in configs), default=1))


def configure_count(count: int) -> int | None:
  """Splits the CPU host into `count` devices and adds `cpu_flags`, before JAX starts.

  Returns:
    The host device count set, or None when no count was set: `count` <= 1, the flag
    already in XLA_FLAGS (the user's choice wins), or JAX already imported (too late; the
    process keeps the devices and flags it has).
  """
  global _configured_count
  if "jax" in sys.modules:
    return None
  flags = os.environ.get("XLA_FLAGS", "")
  added = cpu_flags(flags)
  set_count = count > 1 and FLAG not in flags
  if set_count:
    added.append(f"{FLAG}={count}")
    _configured_count = count
  if added:
    os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
  return count if set_count else None


def mesh_devices(config: ml_collections.ConfigDict, devices: list) -> list:
  """The devices a run's 'data' mesh spans: all of them, unless `configure` split the host.

  Then it is the first `config_device_count` of them, so a study process split for its
  conv VAEs still trains an MLP VAE on one device, as that config asks. Host devices a
  user asked for in XLA_FLAGS, accelerators and multi-process runs always use them all.
  """
  if (_configured_count is None or len(devices) <= 1
      or any(d.platform != "cpu" for d in devices)
      or len({d.process_index for d in devices}) > 1):
    return devices
  return devices[:config_device_count(config, len(devices))]
