"""Runs one train step of conv VAE model A on N simulated CPU devices; prints JSON.

usage: python tests/multidevice_step.py N   (sets XLA_FLAGS before importing jax)
"""

import json
import os
import sys

num_devices = int(sys.argv[1])
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={num_devices}")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import load_config  # noqa: E402
from jaxgen import objectives  # noqa: E402
from jaxgen import runtime  # noqa: E402
from jaxgen import train  # noqa: E402


def main():
  if os.environ.get("JAXGEN_COMPILATION_CACHE_DIR", "").lower() != "none":
    runtime.enable_compilation_cache()
  assert jax.device_count() == num_devices, jax.devices()
  config = load_config("mnist_vae", "smoke")
  config.data.batch_size = 8
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(size=(8, 28, 28, 1)).astype(np.float32),
           "label": rng.integers(0, 10, size=8).astype(np.int32)}
  state = train.init_state(objective, jax.random.PRNGKey(0), batch, mesh)
  step = train.jit_train_step(objective.train_step, mesh)
  sharded = train.shard_batch(batch, mesh)
  assert len(sharded["image"].sharding.device_set) == num_devices
  losses = []
  for _ in range(2):
    state, metrics = step(state, sharded, jax.random.PRNGKey(1))
    losses.append(float(metrics["loss"]))
  leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(state.params)]
  print(json.dumps({"losses": losses, "param_sums": [float(x.sum()) for x in leaves],
                    "param_abs": [float(np.abs(x).sum()) for x in leaves]}))


if __name__ == "__main__":
  main()
