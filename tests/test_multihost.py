"""Multi-host on the real engine: 2 processes on localhost, a jax.distributed cluster.

Each process has 2 simulated CPU devices and the processes talk through gloo, as hosts
of a pod talk through the network. They run the README's pod command (the normal CLI
with --jax_distributed) and must match a 1-process run on 4 devices: same losses and
parameters (to 1e-5; the all-reduce sums in another order), one writer (process 0),
and checkpoints that resume across the two layouts.

SGD keeps the comparison tight: Adam divides by sqrt(v), which magnifies the last-bit
differences of near-zero gradients (see tests/test_multidevice.py).
"""

import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxgen import checkpoints
from jaxgen import objectives
from jaxgen import workdir as workdir_lib
from helpers import REPO, load_config

# One xdist worker runs them all, so the runs of the fixture are made once.
pytestmark = pytest.mark.xdist_group("multihost")
DRIVER = os.path.join(os.path.dirname(__file__), "fault_driver.py")
VAE = ("--config=configs/mnist_vae.py:smoke", "--config.optimizer.name=sgd",
       "--config.optimizer.learning_rate=1e-4", "--config.train.eval_every=2",
       "--config.train.checkpoint_every=2", "--config.train.log_every=1")
DCGAN = ("--config=configs/mnist_dcgan.py:smoke", "--config.optimizer.name=sgd",
         "--config.optimizer.learning_rate=1e-4", "--config.train.checkpoint_every=2",
         "--config.train.log_every=1", "--config.train.num_samples=8",
         "--config.train.num_eval_batches=1")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(workdir, data_dir, flags, *, processes: int, devices: int, record_writes=None):
  """Runs the CLI as `processes` processes of `devices` CPU devices each; their outputs."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  common = [*flags, f"--workdir={workdir}", f"--config.data.data_dir={data_dir}"]
  if processes == 1:
    commands = [[sys.executable, "-m", "jaxgen.main", *common]]
  else:
    address = f"localhost:{_free_port()}"
    commands = []
    for index in range(processes):
      spy = ([DRIVER, f"--record_writes={record_writes}-{index}"] if record_writes
             else ["-m", "jaxgen.main"])
      commands.append([sys.executable, *spy, *common, "--jax_distributed",
                       f"--coordinator_address={address}",
                       f"--num_processes={processes}", f"--process_id={index}"])
  running = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for c in commands]
  try:
    outputs = [p.communicate(timeout=400)[0] for p in running]
  finally:
    for p in running:  # A process left waiting at a barrier would wait for minutes.
      p.kill()
  for process, output in zip(running, outputs):
    assert process.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
  return outputs


def restore(workdir, config_name, step):
  config = load_config(config_name, "smoke", optimizer__name="sgd")  # As the runs.
  objective = objectives.get_objective(config)
  example = {"image": np.zeros((config.data.batch_size, 28, 28, 1), np.float32),
             "label": np.zeros(config.data.batch_size, np.int32)}
  template = objective.init_state(jax.random.PRNGKey(0), example)
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    state, _, restored = ckpt.restore(template, jax.random.PRNGKey(0), step=step)
  finally:
    ckpt.close()
  assert restored == step
  return state


def assert_states_close(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5)


def train_losses(workdir):
  return {r["step"]: r["train/loss"] for r in workdir_lib.read_metrics(workdir)
          if "train/loss" in r}


@pytest.fixture(scope="module")
def vae_runs(data_dir, tmp_path_factory):
  """A 2-process run to step 4 and a 1-process (4 devices) run to step 8."""
  root = tmp_path_factory.mktemp("multihost")
  two, one = str(root / "two"), str(root / "one")
  launch(two, data_dir, (*VAE, "--config.train.num_steps=4"), processes=2, devices=2,
         record_writes=str(root / "writes"))
  launch(one, data_dir, (*VAE, "--config.train.num_steps=8"), processes=1, devices=4)
  return root, two, one


def test_two_processes_match_one_process_on_four_devices(vae_runs):
  _, two, one = vae_runs
  losses_two, losses_one = train_losses(two), train_losses(one)
  assert sorted(losses_two) == [1, 2, 3, 4]
  np.testing.assert_allclose([losses_two[s] for s in range(1, 5)],
                             [losses_one[s] for s in range(1, 5)], rtol=1e-5)
  assert_states_close(restore(two, "mnist_vae", 4), restore(one, "mnist_vae", 4))


def test_only_process_zero_writes_the_workdir(vae_runs):
  root, two, _ = vae_runs
  written = {index: sorted(p for p in open(f"{root}/writes-{index}").read().split("\n")
                          if p.startswith(two + os.sep))
             for index in (0, 1)}
  outside_checkpoints = [p for p in written[1] if "/checkpoints/" not in p]
  assert outside_checkpoints == [], outside_checkpoints
  assert any(p.endswith("metrics.jsonl") for p in written[0])
  assert any(p.endswith("report.md") for p in written[0])
  assert any(p.endswith("samples.png") for p in written[0])
  # TensorBoard files are named after their writer's PID: one writer.
  events = [n for n in os.listdir(two) if n.startswith("events.out.tfevents")]
  assert len({n.split(".")[4] for n in events}) == 1, events
  steps = [r["step"] for r in workdir_lib.read_metrics(two) if "train/loss" in r]
  lines = open(os.path.join(two, "metrics.jsonl")).read().splitlines()
  assert steps == [1, 2, 3, 4] and len(lines) == len(set(lines))  # No row written twice.


def test_checkpoints_resume_across_process_layouts(vae_runs, data_dir):
  root, two, one = vae_runs
  final = restore(one, "mnist_vae", 8)
  # Written by 2 processes, continued by 1 process with 4 devices.
  two_then_one = str(root / "two_then_one")
  shutil.copytree(two, two_then_one)
  launch(two_then_one, data_dir, (*VAE, "--config.train.num_steps=8"), processes=1,
         devices=4)
  assert_states_close(restore(two_then_one, "mnist_vae", 8), final)
  # Written by 1 process, continued by 2 (from its step-4 checkpoint).
  one_then_two = str(root / "one_then_two")
  shutil.copytree(one, one_then_two)
  launch(one_then_two, data_dir, (*VAE, "--config.train.num_steps=8", "--resume_step=4"),
         processes=2, devices=2)
  assert_states_close(restore(one_then_two, "mnist_vae", 8), final)
  np.testing.assert_allclose(
      [train_losses(one_then_two)[s] for s in range(5, 9)],
      [train_losses(one)[s] for s in range(5, 9)], rtol=1e-5)


def test_dcgan_two_processes_match_one_process(data_dir, tmp_path):
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  flags = (*DCGAN, "--config.train.num_steps=2")
  launch(two, data_dir, flags, processes=2, devices=2)
  launch(one, data_dir, flags, processes=1, devices=4)
  for name in ("d_loss", "g_loss"):
    got = [r[f"train/{name}"] for r in workdir_lib.read_metrics(two) if f"train/{name}" in r]
    want = [r[f"train/{name}"] for r in workdir_lib.read_metrics(one) if f"train/{name}" in r]
    assert len(got) == 2
    np.testing.assert_allclose(got, want, rtol=1e-5)
  assert_states_close(restore(two, "mnist_dcgan", 2), restore(one, "mnist_dcgan", 2))
