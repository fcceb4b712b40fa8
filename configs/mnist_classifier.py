r"""A small CNN digit classifier on real mnist_5k labels: the judge of generated digits.

  python -m jaxgen.main --config=configs/mnist_classifier.py --workdir=runs/mnist_classifier

Variants by argument (comma separated):

  configs/mnist_classifier.py:steps=2000  # train longer
  configs/mnist_classifier.py:smoke       # a few steps, for tests

Conv(32, k3) + pool, Conv(64, k3) + pool, Dense(128), Dense(10); images in [0, 1]
(generated images from `sample()` are in [0, 1] too). It labels AC-GAN samples
(conditioned-class accuracy) and InfoGAN code values (purity) in
experiments/celeba_gans; figures/samples.png shows class visualisations.
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "smoke": False})
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist_5k"
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = 64
  config.data.preprocessing = "unit"
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn_classifier"
  config.model.image_shape = (28, 28, 1)
  config.model.num_classes = 10
  config.model.features = (32, 64)
  config.model.hidden = 128

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "classification"

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = args.steps or 1000  # ~14 epochs of the 4,500 training digits.
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.max_to_keep = 3
  config.train.num_eval_batches = config_dict.placeholder(int)
  config.train.num_samples = 20
  config.train.num_reconstructions = 8
  config.train.progress_bar = True
  config.train.curve_metrics = ("loss", "accuracy")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=100, num_steps=4,
                                   eval_every=2, num_samples=10, num_reconstructions=4)
    config.model.features = (4, 8)
    config.model.hidden = 16
  return config
