r"""Fully connected autoencoder on 64x64 faces: 12288 -> 4096 -> 2048 -> 4096 -> 12288.

BatchNorm + ReLU on every hidden layer and on the code, tanh output, MSE loss on [-1, 1]
images; deterministic (no KL). Its code is edited by experiments/face_vaes/run.py.

  python -m jaxgen.main --config=configs/face_autoencoder.py --workdir=runs/face_ae

Variants by argument (comma separated):

  configs/face_autoencoder.py:data=celeba_folder      # the extracted img_align_celeba/ layout
  configs/face_autoencoder.py:data=folder,folder=DIR  # any folder of face images
  configs/face_autoencoder.py:hidden=1024,latent=256  # a smaller net (CPU)
  configs/face_autoencoder.py:smoke                   # tiny, a few steps, for tests

The full net has about 117M parameters (two 12288x4096 layers): a GPU model.
"""

import importlib.util
import os

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib


def _face_data_config(source, folder):
  # The same data block as configs/celeba_vae.py (one definition for both).
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celeba_vae.py")
  spec = importlib.util.spec_from_file_location("_celeba_vae_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.face_data_config(source, folder)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "data=...,folder=DIR,hidden=N,latent=N,smoke"."""
  args = config_lib.parse_arg(arg, {"data": "celeb_a", "folder": None, "hidden": 4096,
                                    "latent": 2048, "smoke": False})
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = _face_data_config(args.data, args.folder)
  config.data.batch_size = 64

  config.model = ml_collections.ConfigDict()
  config.model.name = "fc_autoencoder"
  config.model.image_shape = (64, 64, 3)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.hidden_dim = args.hidden
  config.model.latent_dim = args.latent

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "autoencoding"
  config.objective.likelihood = "mse"  # Pixel-mean squared error on [-1, 1].
  config.objective.beta = 0.0          # Unused: a deterministic autoencoder has no KL.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 12_700      # ~5 epochs of CelebA's training faces at batch 64.
  config.train.log_every = 100
  config.train.eval_every = 2_540
  config.train.checkpoint_every = 2_540
  config.train.max_to_keep = 2         # Each checkpoint holds ~1.4 GB (params + Adam).
  config.train.num_eval_batches = 20
  config.train.num_samples = 32
  config.train.num_reconstructions = 32
  config.train.progress_bar = True
  config.train.curve_metrics = ("loss", "mse")

  if args.smoke:
    config.model.hidden_dim = 16
    config.model.latent_dim = 8
    config_builders.smoke_schedule(config)
  return config
