r"""InfoGAN on CelebA faces at 64x64: 128-d noise and ten 10-way categorical codes.

The celeba_dcgan networks; G's input is the noise and the one-hot codes (100 values),
a head Q on D's trunk predicts each code of a fake, and G and Q minimise its
cross-entropy (weight 1) with the adversarial loss. No labels are used.
figures/code_rows.png: for one fixed noise, one row per code with its 10 values across.
Data as in configs/celeba_dcgan.py.

  python -m jaxgen.main --config=configs/celeba_infogan.py --workdir=runs/celeba_infogan \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_infogan.py:continuous=2    # add continuous codes U[-1, 1]
  configs/celeba_infogan.py:source=catalog  # TFDS celeb_a: 140 px centre crop -> 64x64
  configs/celeba_infogan.py:smoke           # 16x16, tiny widths, a few steps (tests)

Shared fields: jaxgen/config_builders.py (`celeba_dcgan`, `add_infogan`); get_config below
shows what this config changes.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "continuous=M,source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"continuous": 0, "source": "folder", "steps": 0,
                                    "smoke": False})
  # configs/celeba_dcgan.py: data, networks, loss, Adam(2e-4, b1=0.5), 25,000 steps.
  config = config_builders.celeba_dcgan(args.source, steps=args.steps)
  # The codes and the head Q (width 128): cross-entropy at weight 1 (the continuous
  # codes' Gaussian NLL, if any, at weight 0.1), in G's, Q's and D's updates.
  config_builders.add_infogan(config, noise_dim=128, num_categorical_codes=10,
                              num_continuous_codes=args.continuous, q_hidden=128,
                              info_weight=1.0, continuous_weight=0.1)
  if args.smoke:
    config_builders.gan_smoke(config)
  return config
