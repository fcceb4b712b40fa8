"""Host devices for data parallelism over CPU cores (jaxgen/host_devices.py)."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO
from helpers import load_config
from jaxgen import host_devices


@pytest.mark.parametrize("requested,batch,cores,expected", [
    (2, 128, 2, 2),   # The VAE default on a 2-core machine.
    (4, 128, 2, 2),   # Never more devices than cores.
    (2, 129, 2, 1),   # Only a count that divides the batch.
    (8, 100, 16, 5),  # The largest divisor of 100 that is at most 8.
    (1, 128, 16, 1),
])
def test_device_count_divides_the_batch_and_fits_the_cores(requested, batch, cores,
                                                          expected):
  assert host_devices.device_count(requested, batch, cores) == expected


def _configure_in_fresh_process(cpu_devices, env_flags=None, cpu_flags=False):
  code = ("import os, sys; from jaxgen import host_devices; from helpers import load_config; "
          "c = load_config('mnist_vae', 'smoke'); c.data.batch_size = 16; "
          f"c.train.cpu_devices = {cpu_devices}; "
          "n = host_devices.configure(c, cores=2); import jax; "
          "print(n, jax.device_count(), os.environ.get('XLA_FLAGS', ''))")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if env_flags is not None:
    env["XLA_FLAGS"] = env_flags
  env["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests")])
  env["JAXGEN_XLA_CPU_FLAGS"] = "1" if cpu_flags else "0"
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, check=True)
  return out.stdout.strip().split(maxsplit=2)


def test_configure_splits_the_host_before_jax_starts():
  count, devices, flags = _configure_in_fresh_process(2)
  assert (count, devices) == ("2", "2")
  assert flags == "--xla_force_host_platform_device_count=2"


def test_one_device_by_default_and_the_users_xla_flags_win():
  count, devices, *_ = _configure_in_fresh_process(1)
  assert (count, devices) == ("None", "1")
  count, devices, flags = _configure_in_fresh_process(
      2, "--xla_force_host_platform_device_count=3")
  assert (count, devices, flags) == ("None", "3", "--xla_force_host_platform_device_count=3")


def test_too_late_once_jax_is_imported(monkeypatch):
  import jax
  assert jax.device_count() >= 1  # This process has started JAX: too late for the flag.
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  config = load_config("mnist_vae", "smoke")
  config.train.cpu_devices = 2
  assert host_devices.configure(config, cores=2) is None
  assert "XLA_FLAGS" not in os.environ


def test_configure_adds_the_convolution_flag_where_jaxlib_accepts_it():
  count, devices, flags = _configure_in_fresh_process(2, cpu_flags=True)
  assert (count, devices) == ("2", "2")
  expected = ([host_devices.YNN_CONV_FLAG] if host_devices.xla_accepts(host_devices.YNN_CONV_FLAG)
              else [])
  assert flags.split() == expected + ["--xla_force_host_platform_device_count=2"]


def test_a_flag_the_user_names_is_left_alone(monkeypatch):
  monkeypatch.delenv("JAXGEN_XLA_CPU_FLAGS", raising=False)
  name = host_devices.YNN_CONV_FLAG.split("=")[0]
  assert host_devices.cpu_flags(f"{name}=+individual_convolution") == []
  monkeypatch.setenv("JAXGEN_XLA_CPU_FLAGS", "0")
  assert host_devices.cpu_flags("") == []


def test_xla_accepts_probes_once_and_caches_per_jaxlib(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  host_devices.xla_accepts.cache_clear()
  try:
    assert host_devices.xla_accepts("--xla_force_host_platform_device_count=1")
    assert not host_devices.xla_accepts("--xla_cpu_no_such_flag_exists=1")  # XLA aborts.
    cached = json.loads((tmp_path / "jaxgen" / "xla_flags.json").read_text())
    assert sorted(cached.values()) == [False, True]
    assert all(key.startswith("jaxlib ") for key in cached)
    # A new process (cleared memo) answers from the file without probing.
    host_devices.xla_accepts.cache_clear()
    monkeypatch.setattr(host_devices.subprocess, "run", _no_probe)
    assert not host_devices.xla_accepts("--xla_cpu_no_such_flag_exists=1")
    assert host_devices.xla_accepts("--xla_force_host_platform_device_count=1")
  finally:
    host_devices.xla_accepts.cache_clear()


def _no_probe(*args, **kwargs):
  raise AssertionError("probed again despite the cache")


class _FakeDevice:

  def __init__(self, platform="cpu", process_index=0):
    self.platform, self.process_index = platform, process_index


def test_each_run_of_a_split_process_takes_its_own_share(monkeypatch):
  config = load_config("mnist_vae", "smoke")
  config.data.batch_size = 16
  devices = [_FakeDevice(), _FakeDevice()]
  config.train.cpu_devices = 1
  # The user's (or a test's) XLA_FLAGS split: every run uses every device.
  monkeypatch.setattr(host_devices, "_configured_count", None)
  assert host_devices.mesh_devices(config, devices) == devices
  monkeypatch.setattr(host_devices, "_configured_count", 2)
  assert host_devices.mesh_devices(config, devices) == devices[:1]
  config.train.cpu_devices = 2
  assert host_devices.mesh_devices(config, devices) == devices
  config.data.batch_size = 15  # Only one device divides the batch.
  assert host_devices.mesh_devices(config, devices) == devices[:1]
  accelerators = [_FakeDevice("tpu"), _FakeDevice("tpu")]
  assert host_devices.mesh_devices(config, accelerators) == accelerators
  two_processes = [_FakeDevice(process_index=0), _FakeDevice(process_index=1)]
  assert host_devices.mesh_devices(config, two_processes) == two_processes


def test_a_process_for_several_configs_gets_their_largest_count(monkeypatch):
  mlp = load_config("mnist_vae", "model=mlp")
  conv = load_config("mnist_vae", "model=A")
  assert (mlp.train.cpu_devices, conv.train.cpu_devices) == (1, 2)
  monkeypatch.setattr(host_devices, "configure_count", lambda count: count)
  assert host_devices.configure(mlp, cores=4) == 1
  assert host_devices.configure(mlp, conv, cores=4) == 2
  assert host_devices.configure(mlp, conv, cores=1) == 1


def test_studies_split_for_the_largest_default_of_the_configs():
  import glob
  from jaxgen import config_lib
  largest = max(config_lib.with_defaults(config_lib.load(path).train, "train").cpu_devices
                for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))))
  common = open(os.path.join(REPO, "experiments", "common.py")).read()
  assert f"STUDY_CPU_DEVICES = {largest}\n" in common
