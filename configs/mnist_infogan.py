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

Shared fields: jaxgen/config_builders.py (`mnist_dcgan`, `add_infogan`); get_config below
shows what this config changes.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,continuous=M,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "continuous": 2, "smoke": False})
  # configs/mnist_dcgan.py: data, networks, loss, Adam(2e-4, b1=0.5), 3,000 steps.
  config = config_builders.mnist_dcgan(steps=args.steps)
  # The codes and the head Q (width 128): cross-entropy at weight 1, the continuous
  # codes' Gaussian NLL at weight 0.1, in G's, Q's and D's updates.
  config_builders.add_infogan(config, noise_dim=62, num_categorical_codes=1,
                              num_continuous_codes=args.continuous, q_hidden=128,
                              info_weight=1.0, continuous_weight=0.1)
  # The InfoGAN paper's MNIST networks and rates.
  config.model.g_hidden = 1024              # Dense layers in G and D.
  config.model.d_hidden = 1024
  config.optimizer.g_learning_rate = 1e-3   # G and Q; optimizer.learning_rate (D) stays 2e-4.
  if args.smoke:
    config_builders.gan_smoke(config)
    config.model.g_hidden = 16
    config.model.d_hidden = 16
  return config
