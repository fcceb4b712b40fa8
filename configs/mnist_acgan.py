r"""AC-GAN on MNIST digits conditioned on the digit class, offline on mnist_5k.

  python -m jaxgen.main --config=configs/mnist_acgan.py --workdir=runs/mnist_acgan

Variants by argument (comma separated):

  configs/mnist_acgan.py:steps=6000   # train longer
  configs/mnist_acgan.py:smoke        # a few steps, for tests

The mnist_dcgan networks; G also gets the one-hot class, D has a 10-way class head
(log-softmax cross-entropy on real digits with their labels and on fakes with the label
they were drawn for). figures/class_grid.png shows one noise per row, classes across.

Starts from configs/mnist_dcgan.py (data, networks, loss, Adam, schedule); get_config
below adds the class head.
"""

import os

import ml_collections

from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "smoke": False})
  # configs/mnist_dcgan.py: mnist_5k, Adam(2e-4, b1=0.5), 3,000 steps.
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_dcgan.py")
  config = config_lib.load(f"{base}:steps={args.steps}" + (",smoke" if args.smoke else ""))
  # G gets the one-hot class, D a class head: mnist_5k's digit labels.
  config.model.num_classes = 10
  config.objective.auxiliary = "acgan"
  config.objective.aux_weight = 1.0  # Weight of the class cross-entropy.
  config.train.curve_metrics = (*config.train.curve_metrics, "aux_acc_real")
  return config
