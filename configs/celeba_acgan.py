r"""AC-GAN on CelebA faces at 64x64 conditioned on the "Smiling" attribute.

The celeba_dcgan networks; G also gets the attribute as a one-hot of 2 classes
(data.label_attribute turns the boolean into the batch's label), D has a 2-way class
head trained with log-softmax cross-entropy on real faces (their attribute) and on fakes
(the attribute they were drawn with). figures/attribute_pairs.png: ten noises, top row
without the attribute, bottom row with it. Data as in configs/celeba_dcgan.py.

  python -m jaxgen.main --config=configs/celeba_acgan.py --workdir=runs/celeba_acgan \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_acgan.py:attribute=Male  # any of the 40 attributes
  configs/celeba_acgan.py:source=catalog  # TFDS celeb_a: 140 px centre crop -> 64x64
  configs/celeba_acgan.py:smoke           # 16x16, tiny widths, a few steps (tests)

Shared fields: jaxgen/config_builders.py (`celeba_dcgan`, `add_acgan`); get_config below
shows what this config changes.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "attribute=NAME,source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"attribute": "Smiling", "source": "folder", "steps": 0,
                                    "smoke": False})
  # configs/celeba_dcgan.py (data, networks, loss, Adam, 25,000 steps), with the
  # attribute's boolean as each batch's label (0/1).
  config = config_builders.celeba_dcgan(args.source, steps=args.steps,
                                        label_attribute=args.attribute)
  # The class head: model.num_classes = 2 (attribute off / on); objective.auxiliary =
  # 'acgan' with the class cross-entropy at weight 1.
  config_builders.add_acgan(config, num_classes=2, aux_weight=1.0)
  if args.smoke:
    config_builders.gan_smoke(config)
  return config
