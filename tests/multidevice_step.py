"""Two train steps of a VAE and of a GAN on N simulated CPU devices and on one device.

usage: python tests/multidevice_step.py N OUT.npz   (sets XLA_FLAGS before importing jax)

In one process with N host devices, each family (conv VAE A of configs/mnist_vae.py and
the DCGAN of configs/mnist_dcgan.py, BatchNorm in G and D; both `smoke`) runs two steps
of the training loop's jitted step from the same initial state on a 1-device mesh and on
the N-device mesh (state replicated, batch sharded on 'data'), with SGD (see main).
OUT.npz gets, per family
and mesh size, the step losses and every floating leaf of the final state (parameters and
BatchNorm statistics under "state", optimizer states under "opt"), plus D's logits on the real batch with BatchNorm
batch statistics three ways: sharded over N devices, on one device, and with statistics
per device shard (what a per-device BatchNorm would compute). The shards hold images of
different brightness, so per-shard statistics differ visibly from global ones.
"""

import os
import sys

num_devices = int(sys.argv[1])
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={num_devices}")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import load_config  # noqa: E402
from jaxgen import objectives  # noqa: E402
from jaxgen import runtime  # noqa: E402
from jaxgen import train  # noqa: E402

BATCH_SIZE = 16
CONFIGS = {"vae": ("mnist_vae", "smoke"), "gan": ("mnist_dcgan", "smoke")}


def make_batch(config) -> dict[str, np.ndarray]:
  """A batch whose device shards differ in mean brightness (0.25 ... 0.75 in [0, 1])."""
  rng = np.random.default_rng(0)
  shard = np.repeat(np.arange(num_devices), BATCH_SIZE // num_devices)
  offset = shard / max(num_devices - 1, 1)
  images = 0.5 * rng.uniform(size=(BATCH_SIZE, 28, 28, 1)) + 0.5 * offset[:, None, None, None]
  if config.data.preprocessing == "symmetric":
    images = 2.0 * images - 1.0
  return {"image": images.astype(np.float32),
          "label": rng.integers(0, 10, size=BATCH_SIZE).astype(np.int32)}


def float_leaves(state) -> dict[str, list[np.ndarray]]:
  """The state's floating leaves: {"opt": optimizer states, "state": all others}."""
  groups = {"opt": [], "state": []}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.floating):
      groups["opt" if "opt_state" in jax.tree_util.keystr(path) else "state"].append(leaf)
  return groups


def two_steps(objective, state, batch, mesh) -> tuple[list[float], dict[str, list]]:
  """The loop's jitted step, twice, on `mesh`; returns the losses and the final state."""
  # A copy: the step donates its input state, and `state` serves both meshes.
  state = jax.device_put(jax.tree_util.tree_map(lambda x: x.copy(), state),
                         NamedSharding(mesh, PartitionSpec()))
  step = train.jit_train_step(objective.train_step, mesh)
  sharded = train.shard_batch(batch, mesh)
  assert len(sharded["image"].sharding.device_set) == mesh.size
  losses = []
  for _ in range(2):
    state, metrics = step(state, sharded, jax.random.PRNGKey(1))
    losses.append(float(metrics["loss"]))
  return losses, float_leaves(state)


def discriminator_logits(objective, state, images, mesh, num_shards: int = 1) -> np.ndarray:
  """D's logits on `images` with batch statistics, the batch sharded over `mesh`.

  With num_shards > 1 the batch is cut into that many parts, each normalised with its
  own statistics (jax.vmap over the parts): a per-device BatchNorm.
  """
  def logits(state, images):
    out, _ = objective._discriminate(  # pylint: disable=protected-access
        state.g_params, state.d_params, state.d_batch_stats, images)
    return out["logit"]

  def per_part(state, images):
    parts = images.reshape(num_shards, -1, *images.shape[1:])
    return jax.vmap(logits, in_axes=(None, 0))(state, parts).reshape(-1)

  replicated = NamedSharding(mesh, PartitionSpec())
  fn = jax.jit(per_part if num_shards > 1 else logits,
               in_shardings=(replicated, NamedSharding(mesh, PartitionSpec("data"))),
               out_shardings=replicated)
  return np.asarray(fn(state, train.shard_batch({"image": images}, mesh)["image"]))


def main():
  if os.environ.get("JAXGEN_COMPILATION_CACHE_DIR", "").lower() != "none":
    runtime.enable_compilation_cache()
  assert jax.device_count() == num_devices, jax.devices()
  meshes = {1: Mesh(np.asarray(jax.devices()[:1]), ("data",)), num_devices: train.make_mesh()}
  out = {}
  for family, (name, arg) in CONFIGS.items():
    config = load_config(name, arg)
    config.data.batch_size = BATCH_SIZE
    # SGD keeps the update linear in the gradient. Adam divides by sqrt(v) + eps, so a
    # gradient component that cancels to ~1e-9 turns the rounding of a reduction (whose
    # order differs between 1 and N devices) into a visible change of that component's
    # step; the comparison should test data parallelism, not Adam's conditioning.
    config.optimizer.name = "sgd"
    objective = objectives.get_objective(config)
    batch = make_batch(config)
    # One initial state for both meshes (non-partitionable threefry compiles faster).
    with jax.threefry_partitionable(False):
      state = train.init_state(objective, jax.random.PRNGKey(0), batch, meshes[1])
    for size, mesh in meshes.items():
      losses, groups = two_steps(objective, state, batch, mesh)
      out[f"{family}/{size}/losses"] = np.asarray(losses)
      for group, leaves in groups.items():
        for i, leaf in enumerate(leaves):
          out[f"{family}/{size}/{group}/{i:04d}"] = leaf
    if family == "gan":
      for size, mesh in meshes.items():
        out[f"gan/{size}/d_logits"] = discriminator_logits(objective, state, batch["image"],
                                                           mesh)
      out["gan/per_shard_statistics/d_logits"] = discriminator_logits(
          objective, state, batch["image"], meshes[1], num_shards=num_devices)
  np.savez(sys.argv[2], **out)


if __name__ == "__main__":
  main()
