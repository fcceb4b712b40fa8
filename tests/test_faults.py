"""Fault injection on the real command: kill -9, SIGTERM, two writers, corrupt files.

Each test runs `python -m jaxgen.main` in subprocesses on a small config and compares
the final checkpoint with an uninterrupted run's, parameter by parameter and bit for
bit (the optimizer state and the RNG too), plus the eval metrics.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxgen import checkpoints
from jaxgen import objectives
from jaxgen import workdir as workdir_lib
from helpers import REPO, load_config

NUM_STEPS = 60
CHECKPOINT_EVERY = 10
# Checkpoints every 10 steps, evaluation at 30 and 60, a metrics row every step (the
# tests watch metrics.jsonl to know how far a run got).
FLAGS = ("--config=configs/mnist_vae.py:smoke", f"--config.train.num_steps={NUM_STEPS}",
         f"--config.train.checkpoint_every={CHECKPOINT_EVERY}",
         "--config.train.eval_every=30", "--config.train.log_every=1",
         "--config.train.max_to_keep=10")
# One xdist worker runs them all, so the reference run is made once.
pytestmark = pytest.mark.xdist_group("faults")
FAULT_SEED = int(os.environ.get("JAXGEN_FAULT_SEED", time.time_ns() % 10_000))
DRIVER = os.path.join(os.path.dirname(__file__), "fault_driver.py")


def start(workdir, data_dir, *extra, driver_args=()):
  """Starts the command (through the fault driver when `driver_args` are given)."""
  # The fault driver imports JAX before the command could apply train.cpu_devices and
  # jaxgen's XLA:CPU flags, so every run takes its two host devices from XLA_FLAGS and
  # none adds the flags: the same devices and convolution code for every process.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=2", JAXGEN_XLA_CPU_FLAGS="0")
  program = [DRIVER, *driver_args] if driver_args else ["-m", "jaxgen.main"]
  return subprocess.Popen(
      [sys.executable, *program, *FLAGS, f"--workdir={workdir}",
       f"--config.data.data_dir={data_dir}", *extra],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
  out, err = process.communicate(timeout=timeout)
  return process.returncode, out + err


def run(workdir, data_dir, *extra):
  code, output = finish(start(workdir, data_dir, *extra))
  assert code == 0, output[-3000:]
  assert "Traceback" not in output, output[-3000:]
  return output


def logged_step(workdir) -> int:
  path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  if not os.path.exists(path):
    return -1
  steps = [r["step"] for r in workdir_lib.read_metrics(workdir) if "train/loss" in r]
  return max(steps, default=-1)


def wait_for_step(process, workdir, step, timeout=240):
  deadline = time.monotonic() + timeout
  while logged_step(workdir) < step:
    assert process.poll() is None, finish(process)[1][-3000:]
    assert time.monotonic() < deadline, f"no step {step} after {timeout} s"
    time.sleep(0.005)


def final_state(workdir):
  config = load_config("mnist_vae", "smoke")
  objective = objectives.get_objective(config)
  example = {"image": np.zeros((16, 28, 28, 1), np.float32), "label": np.zeros(16, np.int32)}
  template = objective.init_state(jax.random.PRNGKey(0), example)
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    state, rng, step = ckpt.restore(template, jax.random.PRNGKey(1))
  finally:
    ckpt.close()
  assert step == NUM_STEPS
  return {"state": state, "rng": rng}


def final_eval(workdir):
  last = workdir_lib.read_metrics(workdir)[-1]
  return {k: v for k, v in last.items() if k.startswith("eval/")}


def differing_leaves(a, b) -> tuple[int, int]:
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  return sum(not np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(leaves_a, leaves_b)), len(leaves_a)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
  """An uninterrupted run: its final state and eval metrics."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  run(workdir, data_dir)
  return final_state(workdir), final_eval(workdir)


def assert_matches_reference(workdir, reference):
  state, metrics = reference
  differing, total = differing_leaves(final_state(workdir), state)
  assert differing == 0, f"{differing} of {total} leaves differ (seed {FAULT_SEED})"
  print(f"{workdir}: {differing} of {total} leaves differ")
  assert final_eval(workdir) == metrics
  steps = [r["step"] for r in workdir_lib.read_metrics(workdir) if "train/loss" in r]
  assert steps == list(range(1, NUM_STEPS + 1))  # One history: each step once, in order.


def test_kill_9_at_random_steps_then_resume_is_bit_exact(data_dir, tmp_path, reference):
  """Killed twice (at random steps of two stretches), resumed each time."""
  rng = random.Random(FAULT_SEED)
  targets = [rng.randrange(CHECKPOINT_EVERY + 1, NUM_STEPS // 2),
             rng.randrange(NUM_STEPS // 2 + 1, NUM_STEPS - 5)]
  workdir = str(tmp_path / "run")
  killed = []
  for target in targets:
    process = start(workdir, data_dir)
    wait_for_step(process, workdir, target)
    process.kill()
    output = finish(process)[1]
    killed.append(logged_step(workdir))
    assert killed[-1] < NUM_STEPS, "the run finished before the kill"
    if len(killed) > 1:
      assert "Took over the workdir lock" in output  # kill -9 left its lock behind.
    with open(os.path.join(workdir, workdir_lib.METRICS_FILE), "a") as f:
      f.write('{"step": 99999, "train/lo')  # And power failed mid-write.
  run(workdir, data_dir)
  assert_matches_reference(workdir, reference)
  print(f"killed at steps {killed} (targets {targets}, seed {FAULT_SEED}): 0 leaves differ")


def test_kill_9_during_a_checkpoint_save_then_resume_is_bit_exact(data_dir, tmp_path, reference):
  workdir = str(tmp_path / "run")
  code, output = finish(start(workdir, data_dir, driver_args=("--kill_after_save_starts=30",)))
  assert code == -signal.SIGKILL, output[-3000:]
  # The save of step 30 never finished: no checkpoint 30 (orbax finalises a step by
  # renaming its temporary folder, which the kill interrupted).
  steps = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True).all_steps()
  assert steps == [10, 20], steps
  run(workdir, data_dir)
  assert_matches_reference(workdir, reference)
  leftovers = [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  assert not leftovers, leftovers  # Unfinished saves are cleaned up.


def test_sigterm_checkpoints_the_current_step_and_exits_cleanly(data_dir, tmp_path, reference):
  workdir = str(tmp_path / "run")
  process = start(workdir, data_dir)
  wait_for_step(process, workdir, CHECKPOINT_EVERY + 5)
  process.send_signal(signal.SIGTERM)
  code, output = finish(process)
  assert code == 128 + signal.SIGTERM, output[-3000:]
  assert "Traceback" not in output, output[-3000:]
  saved = int(re.search(r"SIGTERM received: saved a checkpoint at step (\d+)", output)[1])
  assert saved == logged_step(workdir) > CHECKPOINT_EVERY + 4
  steps = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True).all_steps()
  assert saved in steps
  assert not os.path.exists(os.path.join(workdir, "lock.json"))  # Released.
  output = run(workdir, data_dir)
  assert f"Resumed from checkpoint at step {saved}" in output
  assert_matches_reference(workdir, reference)


def test_second_process_on_a_workdir_is_refused_naming_the_first(data_dir, tmp_path, reference):
  workdir = str(tmp_path / "run")
  first = start(workdir, data_dir, driver_args=("--sleep_per_batch=0.1",))
  wait_for_step(first, workdir, 1)
  began = time.perf_counter()
  code, output = finish(start(workdir, data_dir))
  refused_after = time.perf_counter() - began
  assert code != 0 and "Traceback" not in output, output[-3000:]
  assert f"in use by PID {first.pid} on host" in output, output[-3000:]
  assert logged_step(workdir) < NUM_STEPS, "the first run ended before the second was refused"
  assert finish(first)[0] == 0
  print(f"second process refused after {refused_after:.1f} s")
  assert_matches_reference(workdir, reference)  # The first run was not disturbed.


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(data_dir, tmp_path, reference):
  workdir = str(tmp_path / "run")
  run(workdir, data_dir, "--config.train.num_steps=30")
  step_dir = os.path.join(workdir, "checkpoints", "30")
  data_files = [os.path.join(root, name) for root, _, names in os.walk(step_dir)
                for name in names if os.path.getsize(os.path.join(root, name)) > 1000]
  for path in data_files:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)  # A full disk cut the writes short.
  output = run(workdir, data_dir)
  assert "Checkpoint step 30 (unreadable) moved to" in output
  assert "Resumed from checkpoint at step 20" in output
  assert_matches_reference(workdir, reference)


def test_divergence_then_the_printed_advice_recovers(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  run(workdir, data_dir, "--config.train.num_steps=10")
  code, output = finish(start(workdir, data_dir, "--config.optimizer.learning_rate=1"))
  assert code != 0 and "Traceback" not in output, output[-3000:]
  assert "is nan" in output or "is inf" in output, output[-3000:]
  # Follow the printed advice, as a user would, until the run gets through.
  for attempt in range(4):
    advice = re.search(r"Rerun the same command with (--config\.optimizer\.learning_rate=\S+)"
                       r".*resumes from step (\d+)", output, re.S)
    assert advice, output[-3000:]
    code, output = finish(start(workdir, data_dir, advice[1]))
    assert "Traceback" not in output, output[-3000:]
    assert f"Resumed from checkpoint at step {advice[2]}" in output, output[-3000:]
    if code == 0:
      break
  assert code == 0, output[-3000:]
  changes = [json.loads(line) for line in open(os.path.join(workdir, "config_changes.jsonl"))]
  assert changes[-1]["changes"]["optimizer.learning_rate"]["to"] == pytest.approx(0.1 ** (attempt + 1))
  assert np.isfinite(final_eval(workdir)["eval/elbo_nats"])
  print(f"recovered after {attempt + 1} rerun(s) following the advice")
