"""Host devices for data parallelism over CPU cores (jaxgen/host_devices.py)."""

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


def _configure_in_fresh_process(cpu_devices, env_flags=None):
  code = ("import os, sys; from jaxgen import host_devices; from helpers import load_config; "
          "c = load_config('mnist_vae', 'smoke'); c.data.batch_size = 16; "
          f"c.train.cpu_devices = {cpu_devices}; "
          "n = host_devices.configure(c, cores=2); import jax; "
          "print(n, jax.device_count(), os.environ.get('XLA_FLAGS', ''))")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if env_flags is not None:
    env["XLA_FLAGS"] = env_flags
  env["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests")])
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
