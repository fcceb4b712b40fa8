"""The command line as a user runs it (subprocesses), and the docs that describe it."""

import os
import re
import subprocess
import sys

from helpers import REPO


def run_main(*args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_cli_trains_a_smoke_config_and_writes_the_workdir(data_dir, tmp_path):
  workdir = tmp_path / "run"
  out = run_main("--config=configs/mnist_vae.py:model=C,smoke", f"--workdir={workdir}",
                 f"--config.data.data_dir={data_dir}", "--config.train.num_steps=3")
  assert out.returncode == 0, out.stderr[-3000:]
  for name in ("config.json", "metrics.jsonl", "report.md", "figures/samples.png",
               "figures/reconstructions.png", "figures/learning_curves.png"):
    assert (workdir / name).exists(), name
  assert '"latent_dim": 10' in (workdir / "config.json").read_text()


def test_cli_rejects_a_misspelt_config_field(tmp_path):
  out = run_main("--config=configs/mnist_vae.py:smoke", f"--workdir={tmp_path}",
                 "--config.model.latnt_dim=3")
  assert out.returncode != 0
  assert "latnt_dim" in out.stderr
  assert not (tmp_path / "config.json").exists()


def test_cli_rejects_an_unknown_variant(tmp_path):
  out = run_main("--config=configs/mnist_vae.py:model=Z", f"--workdir={tmp_path}")
  assert out.returncode != 0
  assert "Unknown model variant 'Z'" in out.stderr and "A, B, C, mlp" in out.stderr


def test_ci_runs_the_readme_test_command():
  readme = open(os.path.join(REPO, "README.md")).read()
  ci = open(os.path.join(REPO, ".ci", "run")).read()
  blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
  test_command = next(line for b in blocks for line in b.splitlines() if "pytest" in line)
  assert test_command.strip() in ci
  train_command = next(line for b in blocks for line in b.splitlines()
                       if line.startswith("pip install -e . &&"))
  assert "jaxgen.main --config=configs/mnist_vae.py" in train_command
