# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     provenance: []
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # jaxgen on Colab: train, resume, evaluate
#
# Trains the conv VAE "model A" on 5,000 real MNIST digits that ship inside a package
# (`mnist_5k`, no download), shows its figures, resumes it after a runtime restart,
# evaluates it (IWAE bound and an offline FID) and trains a short DCGAN. The cells are the
# same on a CPU, GPU or TPU runtime (*Runtime > Change runtime type*); batches are sharded
# over every device JAX sees.
#
# This notebook is paired with `notebooks/jaxgen_colab.py` (jupytext, percent format):
# edit either and run `jupytext --sync notebooks/jaxgen_colab.py`. The test suite runs it
# end to end on CPU with `JAXGEN_NOTEBOOK_SMOKE=1` (the configs' `:smoke` variants and a
# few steps).

# %% [markdown]
# ## Parameters
#
# After a runtime restart, run this cell and the next one again, then continue where you
# were: the runs live in their workdirs, not in the Python session.

# %%
import os

# Smoke mode: tiny configs and a few steps (tests/test_notebook.py).
SMOKE = os.environ.get("JAXGEN_NOTEBOOK_SMOKE") == "1"
# Where runs go; None = runs/ in the repository. A Colab runtime's disk is lost when it is
# recycled: to keep runs, mount Drive and point this there, e.g.
#   from google.colab import drive; drive.mount("/content/drive")
#   WORKDIR_ROOT = "/content/drive/MyDrive/jaxgen_runs"
WORKDIR_ROOT = os.environ.get("JAXGEN_NOTEBOOK_WORKDIR_ROOT") or None
# TFDS data dir; None = ~/tensorflow_datasets. mnist_5k is built there on first use, and
# the FID feature network is stored there once trained.
DATA_DIR = os.environ.get("JAXGEN_NOTEBOOK_DATA_DIR") or None
# Cloned when jaxgen is neither installed nor around the notebook. PLACEHOLDER: set
# YOUR-ORG to the organisation that hosts the repository (also in the README's badge).
REPO_URL = "https://github.com/YOUR-ORG/jaxgen"

VAE_CONFIG = "mnist_vae:smoke" if SMOKE else "mnist_vae"    # conv VAE A, 1,500 steps
DCGAN_CONFIG = "mnist_dcgan:smoke" if SMOKE else "mnist_dcgan"  # 3,000 steps
IWAE_K = 4 if SMOKE else 100
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow only reads the data.

# %% [markdown]
# ## Install
#
# Skipped when jaxgen is already importable. Otherwise it uses the checkout around the
# notebook, or clones `REPO_URL`, and runs `pip install -e .`. jaxgen's dependencies have
# lower bounds only, so pip keeps the runtime's JAX, TensorFlow and numpy.

# %%
import glob
import importlib.util
import shutil
import subprocess
import sys

from IPython.display import Image, display


def find_checkout(path):
  """The jaxgen checkout that contains `path`, or None."""
  path = os.path.abspath(path)
  while True:
    if os.path.exists(os.path.join(path, "jaxgen", "train.py")):
      return path
    if os.path.dirname(path) == path:
      return None
    path = os.path.dirname(path)


REPO_DIR = find_checkout(os.getcwd())
if importlib.util.find_spec("jaxgen") is None:
  if REPO_DIR is None:
    REPO_DIR = os.path.abspath("jaxgen")
    if not os.path.exists(REPO_DIR):
      clone = subprocess.run(["git", "clone", "--depth=1", REPO_URL, REPO_DIR],
                             env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
      if clone.returncode:
        raise RuntimeError(f"Cloning {REPO_URL} failed: set REPO_URL in the parameters "
                           f"cell to this repository's address.")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", REPO_DIR], check=True)
  # The editable install is seen by new processes; this one needs the path.
  sys.path.insert(0, REPO_DIR)

from jaxgen import config_lib
from jaxgen import host_devices

# On a CPU-only runtime, split each batch over the cores where the configs ask for it
# (`train.cpu_devices`). JAX takes this only before it starts: restart the runtime to
# change it. TPU and GPU runtimes are unaffected.
host_devices.configure(*(config_lib.load(name) for name in (VAE_CONFIG, DCGAN_CONFIG)))

import jax

from jaxgen import runtime

REPO_DIR = REPO_DIR or find_checkout(os.path.dirname(importlib.util.find_spec("jaxgen").origin))
WORKDIR_ROOT = WORKDIR_ROOT or os.path.join(REPO_DIR or os.getcwd(), "runs")
VAE_WORKDIR = os.path.join(WORKDIR_ROOT, "mnist_vae")
DCGAN_WORKDIR = os.path.join(WORKDIR_ROOT, "mnist_dcgan")
# Compiled programs are kept on disk, so a restarted runtime skips most compiles.
runtime.enable_compilation_cache()

# The hardware the runtime has, and whether JAX uses it.
if os.path.exists("/dev/accel0") or os.environ.get("TPU_ACCELERATOR_TYPE"):
  hardware, extra = "tpu", "jax[tpu]"
elif shutil.which("nvidia-smi"):
  hardware, extra = "gpu", "jax[cuda12]"
else:
  hardware, extra = "cpu", None
print(f"JAX {jax.__version__}, backend {jax.default_backend()}, hardware {hardware}")
print(jax.devices())
if extra and jax.default_backend() != hardware:
  print(f"JAX does not use the {hardware.upper()}: pip install -U '{extra}', then restart.")


def show_figures(workdir, pattern="*.png"):
  """Shows a workdir's figures inline."""
  for path in sorted(glob.glob(os.path.join(workdir, "figures", pattern))):
    print(os.path.basename(path))
    display(Image(filename=path))

# %% [markdown]
# ## Train the conv VAE
#
# `configs/mnist_vae.py` (model A: Conv 1->64->128, k4 s2, latent 2) for two thirds of its
# schedule; the resume cell below trains the rest. The workdir gets `config.json`,
# `metrics.jsonl`, TensorBoard events, checkpoints, `figures/*.png` and `report.md`.
# The command-line equivalent is
# `python -m jaxgen.main --config=configs/mnist_vae.py --workdir=runs/mnist_vae`.

# %%
from jaxgen import config_lib
from jaxgen import train

vae_config = config_lib.load(VAE_CONFIG)
vae_config.data.data_dir = DATA_DIR
vae_config.train.num_steps = vae_config.train.num_steps * 2 // 3
result = train.train_and_evaluate(vae_config, VAE_WORKDIR)
print({k: round(float(v), 3) for k, v in result.eval_metrics.items()})
show_figures(VAE_WORKDIR)

# %% [markdown]
# ## Resume after a runtime restart
#
# Try *Runtime > Restart session*, run the first two cells, then this one. The same call
# on the same workdir continues from the latest checkpoint (state, step and random
# numbers) up to the full schedule; only the schedule and the data location may differ
# from the first call. Running it again once the run is finished trains nothing.

# %%
import json

from jaxgen import config_lib
from jaxgen import train


def last_step(workdir):
  """The last step in a workdir's metrics.jsonl (0 when it has none)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return max([json.loads(line)["step"] for line in f if line.strip()], default=0)


vae_config = config_lib.load(VAE_CONFIG)
vae_config.data.data_dir = DATA_DIR
before = last_step(VAE_WORKDIR)
result = train.train_and_evaluate(vae_config, VAE_WORKDIR)
print(f"Steps {before} -> {last_step(VAE_WORKDIR)} of {vae_config.train.num_steps}; final eval:",
      {k: round(float(v), 3) for k, v in result.eval_metrics.items()})
display(Image(filename=os.path.join(VAE_WORKDIR, "figures", "learning_curves.png")))

# %% [markdown]
# ## Evaluate: IWAE bound and FID
#
# `evaluate_workdir` restores the latest checkpoint, trains nothing, and writes
# `eval.json` and `figures/eval_*.png`: the ELBO and IWAE-k bounds, sample quality (FID,
# KID, precision/recall) and the latent codes. The Inception network cannot be fetched
# offline, so FID uses a small classifier that jaxgen trains on the dataset's labels on
# first use (1,000 steps, a few CPU minutes) and stores under the data dir; such FIDs
# compare only with each other. From a shell:
# `python -m jaxgen.evaluate --workdir=runs/mnist_vae --iwae_k=100`.

# %%
from jaxgen import evaluate

results = evaluate.evaluate_workdir(
    VAE_WORKDIR, "test", data_dir=DATA_DIR, iwae_k=(IWAE_K,),
    max_examples=64 if SMOKE else None, num_samples=100 if SMOKE else None,
    feature_net_smoke=SMOKE)
print("\n".join(evaluate.summary_lines(results)))
show_figures(VAE_WORKDIR, "eval_*.png")

# %% [markdown]
# ## A short DCGAN
#
# `configs/mnist_dcgan.py`: the same loop with the `adversarial` family (one D and one G
# update per step), about 4.5 minutes on 2 CPU cores.

# %%
from jaxgen import config_lib
from jaxgen import train

gan_config = config_lib.load(DCGAN_CONFIG)
gan_config.data.data_dir = DATA_DIR
gan = train.train_and_evaluate(gan_config, DCGAN_WORKDIR)
print({k: round(float(v), 3) for k, v in gan.eval_metrics.items()})
show_figures(DCGAN_WORKDIR)

# %% [markdown]
# ## Studies
#
# `experiments/` holds studies that train several runs and write a `report.md` with
# figures; `--quick` runs them offline with short schedules (the README's "Studies" gives
# each one's time on 2 CPU cores). From a code cell, e.g.:
#
# ```
# !cd {REPO_DIR} && python experiments/mnist_vae_study/run.py --quick \
#     --workdir={WORKDIR_ROOT}/mnist_vae_study
# ```
#
# - `experiments/mnist_vae_study`: Gaussian baseline and conv VAEs A/B/C, checkerboard
#   artifacts, latent spaces.
# - `experiments/celeba_gans`: DCGAN, AC-GAN and InfoGAN (MNIST versions with `--quick`).
# - `experiments/face_vaes`: Frey faces, CelebA and CIFAR-10 VAEs, an autoencoder's latent
#   edits.
# - `experiments/kl_ablation`: the KL weight times 1, 100 and 0.
# - `experiments/anomaly`: one-class MNIST anomaly detection.
