r"""InfoGAN on MNIST digits, the classic setting: one 10-way categorical code and two
continuous codes beside 62-d noise, offline on mnist_5k.

  python -m jaxgen.main --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan

Variants by argument (comma separated):

  configs/mnist_infogan.py:steps=6000    # train longer
  configs/mnist_infogan.py:continuous=0  # the categorical code only
  configs/mnist_infogan.py:smoke         # a few steps, for tests

The mnist_dcgan convs with the InfoGAN paper's additions: a dense 1024 layer (BN) in G
before the 7x7x128 map and in D after its convs, shared by D's head and the head Q that
predicts the codes of fakes; Adam with lr 1e-3 for G and Q, 2e-4 for D. G and Q (and
D's trunk) minimise the categorical cross-entropy (weight 1) and the continuous codes'
Gaussian NLL (weight 0.1) with the adversarial loss. figures/code_rows.png: one row per
noise, the code's 10 values across; no labels are used.
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,continuous=M,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "continuous": 2, "smoke": False})
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
  config.model.noise_dim = 62
  config.model.g_features = (128, 64)
  config.model.d_features = (64, 128)
  config.model.num_classes = 0
  config.model.num_categorical_codes = 1
  config.model.categorical_dim = 10
  config.model.num_continuous_codes = args.continuous
  config.model.q_hidden = 128              # Width of the Q head's hidden layer.
  config.model.g_hidden = 1024             # The InfoGAN paper's dense layers in G and D.
  config.model.d_hidden = 1024
  config.model.bn_momentum = 0.9

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "adversarial"
  config.objective.loss = "nonsaturating"  # nonsaturating | hinge
  config.objective.label_smoothing = 0.0   # one-sided: real targets 1 - s.
  config.objective.auxiliary = "infogan"   # none | acgan | infogan
  config.objective.info_weight = 1.0       # Categorical code cross-entropy.
  config.objective.continuous_weight = 0.1  # Continuous codes' Gaussian NLL.
  config.objective.info_in_d_step = True   # D's trunk learns the codes too (original InfoGAN).
  config.objective.d_steps = 1
  config.objective.g_steps = 1
  config.objective.ema_decay = 0.0         # EMA of G for samples; 0 = off.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-4     # D (the InfoGAN paper's rates).
  config.optimizer.g_learning_rate = 1e-3   # G and Q.
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = args.steps or 3000  # ~43 epochs of mnist_5k's 4,500 digits.
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.max_to_keep = 3
  config.train.num_eval_batches = config_dict.placeholder(int)
  config.train.num_samples = 32            # From the same fixed noise at every eval.
  config.train.num_reconstructions = 8     # Unused by GANs (no encoder).
  config.train.progress_bar = True
  config.train.curve_metrics = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real",
                                "d_acc_fake", "info_acc")

  if args.smoke:
    apply_smoke(config)
  return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny widths and a few steps, for tests."""
  config.data.batch_size = 8
  config.data.shuffle_buffer = 100
  config.model.noise_dim = 8
  config.model.g_features = (8, 4)
  config.model.d_features = (4, 8)
  config.model.g_hidden = 16
  config.model.d_hidden = 16
  config.train.num_steps = 4
  config.train.log_every = 2
  config.train.eval_every = 2
  config.train.checkpoint_every = 2
  config.train.num_eval_batches = 2
  config.train.num_samples = 8
  config.train.num_reconstructions = 4
  config.train.progress_bar = False
