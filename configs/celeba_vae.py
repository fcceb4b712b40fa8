r"""All-conv VAE on 64x64 CelebA faces: loss = pixel-mean MSE + lambda * KL, tanh output.

CelebA from the original files in the manual dir (the TFDS catalog's celeb_a; README,
Data), centre-cropped to 140x140 and resized to 64x64 on the fly:

  python -m jaxgen.main --config=configs/celeba_vae.py --workdir=runs/celeba_vae

Variants by argument (comma separated):

  configs/celeba_vae.py:data=celeba_folder      # the extracted img_align_celeba/ layout
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
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib

# data=... -> (data.name, data.center_crop, data.label_attribute, data.eval_split)
DATA_SOURCES = {
    "celeb_a": ("celeb_a", 140, "Male", "test"),
    "celeba_folder": ("celeba_folder", None, "Male", "test"),
    "folder": ("image_folder", None, None, "test"),
}


def face_data_config(source: str, folder: str | None) -> ml_collections.ConfigDict:
  """The `data` block of the 64x64 face configs for a data source."""
  if source not in DATA_SOURCES:
    raise ValueError(f"Unknown data variant {source!r}; known: {', '.join(DATA_SOURCES)}.")
  name, crop, attribute, eval_split = DATA_SOURCES[source]
  data = ml_collections.ConfigDict()
  data.name = name
  data.data_dir = config_dict.placeholder(str)
  data.manual_dir = config_dict.placeholder(str)
  data.download = False
  data.batch_size = 128
  data.preprocessing = "symmetric"          # [-1, 1], like the tanh output.
  data.image_size = 64
  data.center_crop = config_dict.placeholder(int)
  data.center_crop = crop                   # celeb_a: 140 of the 178x218 originals.
  data.label_attribute = config_dict.placeholder(str)
  data.label_attribute = attribute          # Colours the t-SNE; the probe predicts it.
  data.image_folder = config_dict.placeholder(str)
  data.image_folder = folder                # data=folder: the folder of images.
  data.grayscale = False
  data.bad_images = "fail"                  # image_folder: 'fail' | 'skip' unreadable files.
  data.test_fraction = 0.1                  # image_folder: share of each class in test.
  data.train_split = "train"
  data.eval_split = eval_split
  data.shuffle_buffer = 10_000
  data.cache = True
  return data


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "data=celeb_a|celeba_folder|folder,folder=DIR,lam=X,..."."""
  args = config_lib.parse_arg(arg, {"data": "celeb_a", "folder": None, "lam": 3e-6,
                                    "latent": 128, "smoke": False})
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = face_data_config(args.data, args.folder)

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
  config.train.curve_metrics = ("loss", "mse", "kl_nats")

  if args.smoke:
    config.model.channels = (4, 8, 8, 8)
    config.model.latent_dim = 8
    config_builders.smoke_schedule(config)
  return config
