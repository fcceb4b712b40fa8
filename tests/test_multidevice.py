"""Data parallelism: 8 simulated CPU devices give the numbers of 1 device, VAE and GAN.

The step is the training loop's own (`train.jit_train_step`: state replicated, batch
sharded on 'data'); see tests/multidevice_step.py, run in a subprocess because the device
count must be set before jax starts.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_DEVICES = 8


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("multidevice") / "results.npz")
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, os.path.join(HERE, "multidevice_step.py"),
                        str(NUM_DEVICES), path],
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  with np.load(path) as data:
    return dict(data)


def _leaves(results, family, size, group):
  prefix = f"{family}/{size}/{group}/"
  return [results[k] for k in sorted(results) if k.startswith(prefix)]


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_eight_devices_match_one_device(results, family):
  np.testing.assert_allclose(results[f"{family}/{NUM_DEVICES}/losses"],
                             results[f"{family}/1/losses"], rtol=1e-5)
  # Parameters and (GAN) BatchNorm running statistics, element by element.
  one, many = (_leaves(results, family, n, "state") for n in (1, NUM_DEVICES))
  assert len(one) == len(many) > 0
  for i, (a, b) in enumerate(zip(one, many)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"state leaf {i}")
  # SGD momentum = accumulated gradients: to 1e-5 of the largest one. A gradient element
  # that sums thousands of terms cancelling to ~0 (an output bias) keeps the rounding of
  # those terms, and the summation order differs between 1 and 8 devices.
  one, many = (_leaves(results, family, n, "opt") for n in (1, NUM_DEVICES))
  assert len(one) == len(many) > 0
  scale = max(np.max(np.abs(a)) for a in one)
  for i, (a, b) in enumerate(zip(one, many)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * scale,
                               err_msg=f"optimizer state leaf {i}")
  # Two steps really moved the state (so equality is not equality of the initial state).
  losses = results[f"{family}/1/losses"]
  assert losses[0] != losses[1]


def test_batch_norm_uses_global_batch_statistics(results):
  global_logits = results["gan/1/d_logits"]
  np.testing.assert_allclose(results[f"gan/{NUM_DEVICES}/d_logits"], global_logits,
                             rtol=1e-5, atol=1e-6)
  # Statistics per device shard would give other logits, far beyond the tolerance above,
  # so the step comparison would catch a per-device BatchNorm.
  per_shard = results["gan/per_shard_statistics/d_logits"]
  assert np.max(np.abs(per_shard - global_logits)) > 1e-2
