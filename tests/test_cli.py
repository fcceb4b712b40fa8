"""The command line as a user runs it (subprocesses; `main.main` in-process), and its docs."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

import jaxgen
from helpers import REPO
from jaxgen import errors
from jaxgen import host_devices
from jaxgen import main


def run_main(*args, timeout=600, env=None):
  env = dict(os.environ, **(env or {}))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # What a user sees.
  return subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_cli_trains_a_smoke_config_and_writes_the_workdir(data_dir, tmp_path):
  workdir = tmp_path / "run"
  # `=None` sets None-able fields back to None (an int field, a float one, a str one).
  out = run_main("--config=configs/mnist_vae.py:model=C,smoke", f"--workdir={workdir}",
                 f"--config.data.data_dir={data_dir}", "--config.train.num_steps=3",
                 "--config.train.num_eval_batches=None", "--config.optimizer.grad_clip_norm=None",
                 "--config.data.manual_dir=None", "--config.train.cpu_devices=2",
                 env={"XLA_FLAGS": ""})
  assert out.returncode == 0, out.stderr[-3000:]
  # Data parallel over the cores: batch 16 split over 2 host devices where 2 cores exist.
  split = "Each batch is split over 2 CPU host devices (train.cpu_devices)." in out.stderr
  assert split == (host_devices.usable_cores() >= 2)
  for name in ("config.json", "metrics.jsonl", "report.md", "figures/samples.png",
               "figures/reconstructions.png", "figures/learning_curves.png"):
    assert (workdir / name).exists(), name
  written = json.loads((workdir / "config.json").read_text())
  assert written["model"]["latent_dim"] == 10
  assert written["train"]["num_eval_batches"] is None
  # Quiet by default: jaxgen's own INFO lines, no library internals; one summary line.
  assert "Step 3 eval: elbo_nats" in out.stderr
  for noise in ("CheckpointManagerOptions", "_NonBlockingMetadataStore", "Unable to initialize",
                "absl::InitializeLog", "oneDNN", "cuda", "Downloading and preparing"):
    assert noise not in out.stderr
  elbo = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["eval/elbo_nats"]
  assert re.fullmatch(rf"done in (\d+m)?\d+s \(CPU time .*\): test -ELBO {-elbo:.1f} nats; "
                      rf"report at {re.escape(str(workdir))}/report.md", out.stdout.strip())


def _assert_one_paragraph(out, *fragments):
  """A user error: exit status 2, one line on stderr naming what to fix, no traceback."""
  assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
  assert "Traceback" not in out.stderr + out.stdout
  message = out.stderr.strip()
  assert message.startswith("Error") and "\n" not in message, message
  for fragment in fragments:
    assert fragment in message, message


@pytest.mark.parametrize("args,fragments", [
    (["--config.train.max_to_keep=0"], ["train.max_to_keep", "integer >= 1", "got 0"]),
    (["--config.train.log_every=-1"], ["train.log_every", "got -1"]),
    (["--config.optimizer.grad_clip_norm=0.0"],
     ["optimizer.grad_clip_norm", "> 0, or None (no clipping)", "got 0.0"]),
    (["--config.optimizer.learning_rate=inf"], ["optimizer.learning_rate", "got inf"]),
    (["--config.objective.beta=nan"], ["objective.beta", "got nan"]),
    (["--config.model.output_padding=-1"], ["model.output_padding", "got -1"]),
    (["--config.train.num_steps=None"], ["train.num_steps", "got None"]),
    (["--config.train.num_steps=ten"], ["--config.train.num_steps=ten", "invalid literal"]),
    (["--config.model.latnt_dim=3"],
     ["Unknown config field model.latnt_dim", "did you mean model.latent_dim?"]),
    (["--config.train.curve_metrics=foo"], ["train.curve_metrics names 'foo'", "it logs"]),
    (["--resume_step=-1"], ["--resume_step=-1"]),
    (["--workdri=x"], ["workdri", "Did you mean: workdir"]),
], ids=lambda v: v[0] if isinstance(v, list) and v[0].startswith("--") else None)
def test_cli_reports_a_bad_command_as_one_paragraph(tmp_path, args, fragments):
  out = run_main("--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path}", *args)
  _assert_one_paragraph(out, *fragments)
  assert not (tmp_path / "config.json").exists()


def test_cli_names_a_missing_config_file(tmp_path):
  path = tmp_path / "no_such_config.py"
  out = run_main(f"--config={path}:smoke", f"--workdir={tmp_path}")
  _assert_one_paragraph(out, f"No config file '{path}'")


def test_cli_rejects_an_unknown_variant(tmp_path):
  out = run_main("--config=configs/mnist_vae.py:model=Z", f"--workdir={tmp_path}")
  _assert_one_paragraph(out, "Unknown model variant 'Z'", "A, B, C, mlp")


def test_cli_shows_the_traceback_when_asked(tmp_path):
  args = ("--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path}",
          "--config.train.max_to_keep=0")
  out = run_main(*args, "--verbosity=1")
  assert out.returncode == 2 and "Traceback" in out.stderr and "ConfigError" in out.stderr
  out = run_main(*args, env={"JAXGEN_TRACEBACK": "1"})
  assert out.returncode == 2 and "Traceback" in out.stderr


def test_a_bad_field_fails_before_jax_or_tensorflow_is_imported(tmp_path):
  code = ("import sys; from jaxgen import main; "
          f"rc = main.main(['jaxgen', '--config=configs/mnist_vae.py', '--workdir={tmp_path}', "
          "'--config.train.max_to_keep=0']); "
          "print(rc, sorted(m for m in ('jax', 'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert out.stdout.split("\n")[-2] == "2 []", out.stdout + out.stderr


class _FakeTrain:
  """Stands in for jaxgen.train: records the call, then acts as a SIGTERM would."""

  def __init__(self):
    self.calls = []

  def train_and_evaluate(self, config, workdir, **kwargs):
    self.calls.append((config, workdir, kwargs))
    raise errors.TrainingInterrupted(
        f"SIGTERM received: saved a checkpoint at step 7 in {workdir}. Rerun the same "
        f"command to resume.", signal.SIGTERM, 7)


def test_interrupted_training_exits_with_128_plus_the_signal(monkeypatch, tmp_path, capsys):
  fake = _FakeTrain()
  monkeypatch.setitem(sys.modules, "jaxgen.train", fake)
  monkeypatch.setattr(jaxgen, "train", fake, raising=False)
  argv = ["jaxgen", "--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path}",
          "--compilation_cache_dir=none"]
  assert main.main([*argv, "--resume_step=4"]) == 128 + signal.SIGTERM
  assert capsys.readouterr().err.strip() == (
      f"SIGTERM received: saved a checkpoint at step 7 in {tmp_path}. Rerun the same "
      f"command to resume.")
  assert fake.calls[0][1:] == (str(tmp_path), {"resume_step": 4})
  assert fake.calls[0][0].train.num_steps == 6  # The smoke variant.
  assert main.main(argv) == 128 + signal.SIGTERM
  assert fake.calls[1][2] == {}  # No --resume_step: the latest checkpoint.


def test_ci_runs_the_readme_test_command():
  readme = open(os.path.join(REPO, "README.md")).read()
  ci = open(os.path.join(REPO, ".ci", "run")).read()
  blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
  test_command = next(line for b in blocks for line in b.splitlines() if "pytest" in line)
  assert test_command.strip() in ci
  train_command = next(line for b in blocks for line in b.splitlines()
                       if line.startswith("pip install -e . &&"))
  assert "jaxgen.main --config=configs/mnist_vae.py" in train_command
