r"""Fully connected autoencoder on 64x64 faces: 12288 -> 4096 -> 2048 -> 4096 -> 12288.

BatchNorm + ReLU on every hidden layer and on the code, tanh output, MSE loss on [-1, 1]
images; deterministic (no KL). Its code is edited by experiments/face_vaes/run.py.
Data as in configs/celeba_vae.py (default: the extracted CelebA layout,
`data.name='celeba_folder'`), at batch 64.

  python -m jaxgen.main --config=configs/face_autoencoder.py --workdir=runs/face_ae \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/face_autoencoder.py:data=celeb_a            # the TFDS catalog's original files
  configs/face_autoencoder.py:data=folder,folder=DIR  # any folder of face images
  configs/face_autoencoder.py:hidden=1024,latent=256  # a smaller net (CPU)
  configs/face_autoencoder.py:smoke                   # tiny, a few steps, for tests

The full net has about 117M parameters (two 12288x4096 layers): a GPU model.
"""

import os

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "data=...,folder=DIR,hidden=N,latent=N,smoke"."""
  args = config_lib.parse_arg(arg, {"data": "celeba_folder", "folder": None, "hidden": 4096,
                                    "latent": 2048, "smoke": False})
  config = ml_collections.ConfigDict()
  config.seed = 0
  # The data block of configs/celeba_vae.py (its sources and variants), at batch 64.
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celeba_vae.py")
  base_arg = f"data={args.data}" + (f",folder={args.folder}" if args.folder else "")
  config.data = config_lib.load(f"{base}:{base_arg}").data
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
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=64, num_steps=4,
                                   eval_every=4, num_samples=8, num_reconstructions=8)
    config.model.hidden_dim = 16
    config.model.latent_dim = 8
  return config
