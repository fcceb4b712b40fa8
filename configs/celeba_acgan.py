r"""AC-GAN on CelebA faces at 64x64 conditioned on the "Smiling" attribute.

The celeba_dcgan networks; G also gets the attribute as a one-hot of 2 classes
(data.label_attribute turns the boolean into the batch's label), D has a 2-way class
head trained with log-softmax cross-entropy on real faces (their attribute) and on fakes
(the attribute they were drawn with). figures/attribute_pairs.png: ten noises, top row
without the attribute, bottom row with it. Data as in configs/celeba_dcgan.py (default:
the extracted layout, `data.name='celeba_folder'`).

  python -m jaxgen.main --config=configs/celeba_acgan.py --workdir=runs/celeba_acgan \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_acgan.py:attribute=Male  # any of the 40 attributes
  configs/celeba_acgan.py:source=catalog  # TFDS celeb_a: 140 px centre crop -> 64x64
  configs/celeba_acgan.py:smoke           # 16x16, tiny widths, a few steps (tests)

Starts from configs/celeba_dcgan.py (data, networks, loss, Adam, schedule); get_config
below adds the label and the class head.
"""

import os

import ml_collections

from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "attribute=NAME,source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"attribute": "Smiling", "source": "folder", "steps": 0,
                                    "smoke": False})
  # configs/celeba_dcgan.py: CelebA 64x64, Adam(2e-4, b1=0.5), 25,000 steps.
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celeba_dcgan.py")
  config = config_lib.load(f"{base}:source={args.source},steps={args.steps}"
                           + (",smoke" if args.smoke else ""))
  # The attribute's boolean is each batch's label: 2 classes (off / on).
  config.data.label_attribute = args.attribute
  config.model.num_classes = 2
  config.objective.auxiliary = "acgan"
  config.objective.aux_weight = 1.0  # Weight of the class cross-entropy.
  config.train.curve_metrics = (*config.train.curve_metrics, "aux_acc_real")
  return config
