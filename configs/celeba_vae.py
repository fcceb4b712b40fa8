r"""All-conv VAE on 64x64 CelebA faces: loss = pixel-mean MSE + lambda * KL, tanh output.

Needs CelebA on disk (no download by default), one of:
  * the extracted layout (img_align_celeba/*.jpg + list_attr_celeba.txt [+
    list_eval_partition.txt]) in the manual dir: `data.name='celeba_folder'` (default),
    cropped to 140 px of 178 and resized to 64x64 when the dataset is built;
  * the five original files of the TFDS catalog's celeb_a in the manual dir:
    `:data=celeb_a`, centre-cropped to 140x140 and resized on the fly (README, Data).

  python -m jaxgen.main --config=configs/celeba_vae.py --workdir=runs/celeba_vae \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_vae.py:data=celeb_a            # the TFDS catalog's original files
  configs/celeba_vae.py:data=folder,folder=DIR  # any folder of face images (image_folder)
  configs/celeba_vae.py:lam=1e-5                # the KL weight lambda
  configs/celeba_vae.py:latent=64
  configs/celeba_vae.py:smoke                   # tiny model, a few steps, for tests

The loss is mse + lambda * kl_nats per example: mse is the mean over the 64*64*3 values
of (x - x_hat)^2 with x in [-1, 1] (unit: squared [-1, 1] units), kl_nats the KL of the
posterior from N(0, I) summed over the latent (nats). lambda (`objective.beta`,
default 3e-6) is a weight in squared [-1, 1] units per nat: at 3e-6 a KL of 100 nats
costs as much as an MSE of 3e-4, so reconstructions dominate. It is not the beta of a
beta-VAE (the MSE is not a log-likelihood), and the run reports no ELBO.

configs/face_autoencoder.py takes its data block (and the `data=` variants) from here.
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib

# data=... -> (data.name, data.center_crop, data.label_attribute). celeb_a keeps the
# 178x218 originals, so the pipeline crops; the folder builders crop when they build.
DATA_SOURCES = {
    "celeb_a": ("celeb_a", 140, "Male"),
    "celeba_folder": ("celeba_folder", None, "Male"),
    "folder": ("image_folder", None, None),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "data=celeba_folder|celeb_a|folder,folder=DIR,lam=X,..."."""
  args = config_lib.parse_arg(arg, {"data": "celeba_folder", "folder": None, "lam": 3e-6,
                                    "latent": 128, "smoke": False})
  if args.data not in DATA_SOURCES:
    raise ValueError(f"Unknown data variant {args.data!r}; known: {', '.join(DATA_SOURCES)}.")
  data_name, center_crop, label_attribute = DATA_SOURCES[args.data]

  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = data_name
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = 128
  config.data.preprocessing = "symmetric"   # [-1, 1], like the tanh output.
  config.data.image_size = 64
  config.data.center_crop = config_dict.placeholder(int)
  config.data.center_crop = center_crop     # In source pixels; None = the largest square.
  config.data.label_attribute = config_dict.placeholder(str)
  config.data.label_attribute = label_attribute  # Colours the t-SNE; the probe predicts it.
  config.data.image_folder = config_dict.placeholder(str)
  config.data.image_folder = args.folder    # data=folder: the folder of images.
  config.data.grayscale = False
  config.data.bad_images = "fail"           # image_folder: 'fail' | 'skip' unreadable files.
  config.data.test_fraction = 0.1           # image_folder: share of each class in test.
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict()
  config.model.name = "celeba_conv_vae"
  config.model.image_shape = (64, 64, 3)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.channels = (32, 64, 128, 256)
  config.model.latent_dim = args.latent
  config.model.batch_norm = True

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "autoencoding"
  config.objective.likelihood = "mse"  # Pixel-mean squared error, not a likelihood.
  config.objective.beta = args.lam     # lambda: squared [-1, 1] units per nat of KL.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 5e-4
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 12_700      # ~10 epochs of CelebA's 162,770 training faces.
  config.train.log_every = 100
  config.train.eval_every = 2_540
  config.train.checkpoint_every = 2_540
  config.train.max_to_keep = 3
  config.train.num_eval_batches = 20   # Monitoring only; the study scores the whole split.
  config.train.num_samples = 32
  config.train.num_reconstructions = 32
  config.train.progress_bar = True
  # CPU-only hosts: one host device whose ops use every core (jaxgen/host_devices.py).
  # 2 devices measured 1.10-1.33x before the conv lowerings of jaxgen/models/layers.py,
  # 0.88-0.96x after them (2 cores, interleaved).
  config.train.cpu_devices = 1
  config.train.curve_metrics = ("loss", "mse", "kl_nats")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=64, num_steps=4,
                                   eval_every=4, num_samples=8, num_reconstructions=8)
    config.model.channels = (4, 8, 8, 8)
    config.model.latent_dim = 8
  return config
