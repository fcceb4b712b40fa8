"""Data parallelism: 4 simulated CPU devices give the numbers of 1 device."""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def run_on(num_devices: int) -> dict:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, os.path.join(HERE, "multidevice_step.py"), str(num_devices)],
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_four_devices_match_one_device():
  one, four = run_on(1), run_on(4)
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
  np.testing.assert_allclose(four["param_sums"], one["param_sums"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(four["param_abs"], one["param_abs"], rtol=1e-5)
