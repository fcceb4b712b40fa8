"""A bounded, seeded fuzz of command-line overrides: every outcome is a run or a clean error.

Each case overrides one field of configs/mnist_vae.py:smoke with a value drawn from
VALUES (out of range, non-finite, unparsable, None, empty, wrong type) and runs
`jaxgen.main.main` in this process. A case passes when it trains (exit 0) or fails
with exit status 2 and a one-paragraph message, without a traceback and within
CASE_TIMEOUT_S. The counts print with `pytest -s`.
"""

import contextlib
import io
import random
import signal

import pytest

from helpers import load_config
from jaxgen import main

SEED = 0
NUM_RANDOM_CASES = 40
CASE_TIMEOUT_S = 180
VALUES = ("-1", "0", "1", "2", "-7", "3.5", "1e9", "999999999999", "nan", "inf", "-inf",
          "x", "None", "", "True", "(1, 2)", "'a'")
# Fields whose huge value asks for huge work or memory (an expensive run, not a mistake).
RESOURCE_FIELDS = ("data.batch_size", "model.channels", "model.image_shape",
                   "model.latent_dim", "model.kernel_size", "model.decoder_kernel_size",
                   "model.padding", "model.decoder_padding", "model.stride",
                   "train.num_steps", "train.num_samples", "train.num_reconstructions")
HUGE = ("999999999999",)
# Overrides that must train.
VALID = (("objective.beta", "0.5"), ("model.latent_dim", "3"),
         ("optimizer.grad_clip_norm", "1.0"), ("train.num_eval_batches", "None"),
         ("seed", "7"), ("data.preprocessing", "binarize_dynamic"))
# Kept small so each successful case takes a few seconds.
CHEAP = ("--config.train.num_steps=2", "--config.train.num_eval_batches=1",
         "--config.train.num_samples=4", "--config.train.num_reconstructions=4")


class _Hang(Exception):
  pass


def _fields(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _fields(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def _cases():
  """(field, value): VALID, then random ones (data_dir stays the test's)."""
  rng = random.Random(SEED)
  fields = sorted(f for f in _fields(load_config("mnist_vae", "smoke")) if f != "data.data_dir")
  cases = list(VALID)
  while len(cases) < len(VALID) + NUM_RANDOM_CASES:
    field, value = rng.choice(fields), rng.choice(VALUES)
    if not (value in HUGE and field in RESOURCE_FIELDS):
      cases.append((field, value))
  return cases


def _run_case(argv):
  """(outcome, exit status, captured output) of one in-process run."""
  def on_alarm(signum, frame):
    raise _Hang()

  previous = signal.signal(signal.SIGALRM, on_alarm)
  signal.alarm(CASE_TIMEOUT_S)
  out = io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
      status = main.main(argv)
  except _Hang:
    return "hang", None, out.getvalue()
  except Exception as e:  # An error that escaped as a traceback.
    return "traceback", None, f"{out.getvalue()}\n{type(e).__name__}: {e}"
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
  text = out.getvalue()
  if status == 0:
    return "success", status, text
  errors = [line for line in text.splitlines() if line.startswith("Error")]
  clean = status == 2 and "Traceback" not in text and len(errors) == 1
  return ("clean error" if clean else "unclean"), status, text


def test_cli_overrides_give_a_run_or_a_clean_error(data_dir, tmp_path):
  counts = dict.fromkeys(("tried", "success", "clean error", "traceback", "hang", "unclean"), 0)
  bad, valid_failed = [], []
  for i, (field, value) in enumerate(_cases()):
    argv = ["jaxgen", "--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path / str(i)}",
            f"--config.data.data_dir={data_dir}", *CHEAP, f"--config.{field}={value}"]
    outcome, status, text = _run_case(argv)
    counts["tried"] += 1
    counts[outcome] += 1
    if outcome not in ("success", "clean error"):
      bad.append(f"--config.{field}={value!r}: {outcome} (status {status}): {text[-1500:]}")
    if (field, value) in VALID and outcome != "success":
      valid_failed.append(f"--config.{field}={value}: {text[-1500:]}")
  print(f"\nCLI fuzz (seed {SEED}): " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
  assert not bad, "\n\n".join(bad)
  assert not valid_failed, "\n\n".join(valid_failed)
  assert counts["clean error"] >= NUM_RANDOM_CASES // 4  # The fuzz does reach the errors.


@pytest.mark.parametrize("field,value", [("train.max_to_keep", "0"), ("model.latnt_dim", "3")])
def test_the_fuzz_harness_sees_clean_errors(data_dir, tmp_path, field, value):
  argv = ["jaxgen", "--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path}",
          f"--config.data.data_dir={data_dir}", f"--config.{field}={value}"]
  outcome, status, text = _run_case(argv)
  assert (outcome, status) == ("clean error", 2), text
