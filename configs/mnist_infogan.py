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

Starts from configs/mnist_dcgan.py (data, networks, loss, Adam, schedule); get_config
below adds the codes, the head Q and the paper's dense layers and rates.
"""

import os

import ml_collections

from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,continuous=M,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "continuous": 2, "smoke": False})
  # configs/mnist_dcgan.py: mnist_5k, Adam(2e-4, b1=0.5), 3,000 steps.
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_dcgan.py")
  config = config_lib.load(f"{base}:steps={args.steps}" + (",smoke" if args.smoke else ""))
  # G's input: noise, the one-hot codes (model.categorical_dim = 10 values each) and the
  # continuous codes ~ U[-1, 1].
  config.model.noise_dim = 62
  config.model.num_categorical_codes = 1
  config.model.num_continuous_codes = args.continuous
  config.model.q_hidden = 128                    # Width of the Q head's hidden layer.
  config.objective.auxiliary = "infogan"
  config.objective.info_weight = 1.0             # Categorical codes' cross-entropy.
  config.objective.continuous_weight = 0.1       # Continuous codes' Gaussian NLL.
  config.objective.info_in_d_step = True  # D's trunk learns the codes too (original code).
  config.train.curve_metrics = (*config.train.curve_metrics, "info_acc")
  # The InfoGAN paper's MNIST networks and rates.
  config.model.g_hidden = 1024              # Dense layers in G and D.
  config.model.d_hidden = 1024
  config.optimizer.g_learning_rate = 1e-3   # G and Q; optimizer.learning_rate (D) stays 2e-4.
  if args.smoke:
    config.model.noise_dim = 8  # As in the mnist_dcgan smoke variant.
    config.model.g_hidden = 16
    config.model.d_hidden = 16
  return config
