r"""DCGAN on MNIST digits (28x28), offline on mnist_5k: the MNIST version of celeba_dcgan.

  python -m jaxgen.main --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan

Variants by argument (comma separated):

  configs/mnist_dcgan.py:steps=6000   # train longer
  configs/mnist_dcgan.py:smoke        # a few steps, for tests

Generator: 64-d noise -> 7x7x128 -> 14x14x64 -> 28x28x1 (tanh); discriminator 64 -> 128 ->
7x7 conv to one logit; non-saturating loss, Adam(2e-4, b1=0.5). Images in [-1, 1].
configs/mnist_acgan.py and configs/mnist_infogan.py start from this config.
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
  config.data.preprocessing = "symmetric"  # GANs see [-1, 1] (tanh generator).
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.image_shape = (28, 28, 1)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.noise_dim = 64
  config.model.g_features = (128, 64)      # G's widths, widest first: 7x7x128 -> 14x14x64.
  config.model.d_features = (64, 128)
  config.model.num_classes = 0             # AC-GAN: configs/mnist_acgan.py.
  config.model.num_categorical_codes = 0   # InfoGAN: configs/mnist_infogan.py.
  config.model.categorical_dim = 10        # Values of each categorical code.
  config.model.num_continuous_codes = 0
  config.model.bn_momentum = 0.9

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "adversarial"
  config.objective.loss = "nonsaturating"  # nonsaturating | hinge
  config.objective.label_smoothing = 0.0   # one-sided: real targets 1 - s.
  config.objective.auxiliary = "none"      # none | acgan | infogan
  config.objective.d_steps = 1
  config.objective.g_steps = 1
  config.objective.ema_decay = 0.0         # EMA of G for samples; 0 = off.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = args.steps or 3000  # ~43 epochs of mnist_5k's 4,500 training digits.
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.max_to_keep = 3
  # A placeholder keeps None (the whole test split) overridable with an int.
  config.train.num_eval_batches = config_dict.placeholder(int)
  config.train.num_samples = 32            # From the same fixed noise at every eval.
  config.train.num_reconstructions = 8     # Unused by GANs (no encoder).
  config.train.progress_bar = True
  # figures/learning_curves.png; the AC-GAN and InfoGAN heads add their accuracy.
  config.train.curve_metrics = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real",
                                "d_acc_fake")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=100, num_steps=4,
                                   eval_every=2, num_samples=8, num_reconstructions=4)
    config.model.noise_dim = 8
    config.model.g_features = (8, 4)
    config.model.d_features = (4, 8)
  return config
