r"""DCGAN on MNIST digits (28x28), offline on mnist_5k: the MNIST version of celeba_dcgan.

  python -m jaxgen.main --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan

Variants by argument (comma separated):

  configs/mnist_dcgan.py:steps=6000   # train longer
  configs/mnist_dcgan.py:smoke        # a few steps, for tests

Generator: 64-d noise -> 7x7x128 -> 14x14x64 -> 28x28x1 (tanh); discriminator 64 -> 128 ->
7x7 conv to one logit; non-saturating loss, Adam(2e-4, b1=0.5). Images in [-1, 1].

Every field is set by jaxgen/config_builders.py: `mnist_dcgan` (this dataset's numbers)
on `dcgan` (the defaults all GAN configs share); mnist_acgan.py and mnist_infogan.py
start from the same config.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "smoke": False})
  config = config_builders.mnist_dcgan(steps=args.steps)  # 0 = 3,000 steps.
  if args.smoke:
    config_builders.gan_smoke(config)
  return config
