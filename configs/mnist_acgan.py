r"""AC-GAN on MNIST digits conditioned on the digit class, offline on mnist_5k.

  python -m jaxgen.main --config=configs/mnist_acgan.py --workdir=runs/mnist_acgan

Variants by argument (comma separated):

  configs/mnist_acgan.py:steps=6000   # train longer
  configs/mnist_acgan.py:smoke        # a few steps, for tests

The mnist_dcgan networks; G also gets the one-hot class, D has a 10-way class head
(log-softmax cross-entropy on real digits with their labels and on fakes with the label
they were drawn for). figures/class_grid.png shows one noise per row, classes across.

Shared fields: jaxgen/config_builders.py (`mnist_dcgan`, `add_acgan`); get_config below
shows what this config changes.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"steps": 0, "smoke": False})
  # configs/mnist_dcgan.py: data, networks, loss, Adam(2e-4, b1=0.5), 3,000 steps.
  config = config_builders.mnist_dcgan(steps=args.steps)
  # The class head: model.num_classes = 10, the digit classes of the data's "label";
  # objective.auxiliary = 'acgan' with the class cross-entropy at weight 1.
  config_builders.add_acgan(config, num_classes=10, aux_weight=1.0)
  if args.smoke:
    config_builders.gan_smoke(config)
  return config
