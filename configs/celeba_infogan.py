r"""InfoGAN on CelebA faces at 64x64: 128-d noise and ten 10-way categorical codes.

The celeba_dcgan networks; G's input is the noise and the one-hot codes (100 values),
a head Q on D's trunk predicts each code of a fake, and G and Q minimise its
cross-entropy (weight 1) with the adversarial loss. No labels are used.
figures/code_rows.png: for one fixed noise, one row per code with its 10 values across.
Data as in configs/celeba_dcgan.py (default: the extracted layout,
`data.name='celeba_folder'`).

  python -m jaxgen.main --config=configs/celeba_infogan.py --workdir=runs/celeba_infogan \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_infogan.py:continuous=2    # add continuous codes U[-1, 1]
  configs/celeba_infogan.py:source=catalog  # TFDS celeb_a: 140 px centre crop -> 64x64
  configs/celeba_infogan.py:smoke           # 16x16, tiny widths, a few steps (tests)

Starts from configs/celeba_dcgan.py (data, networks, loss, Adam, schedule); get_config
below adds the codes and the head Q.
"""

import os

import ml_collections

from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "continuous=M,source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"continuous": 0, "source": "folder", "steps": 0,
                                    "smoke": False})
  # configs/celeba_dcgan.py: CelebA 64x64, Adam(2e-4, b1=0.5), 25,000 steps.
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celeba_dcgan.py")
  config = config_lib.load(f"{base}:source={args.source},steps={args.steps}"
                           + (",smoke" if args.smoke else ""))
  # G's input: noise, the one-hot codes (model.categorical_dim = 10 values each) and the
  # continuous codes ~ U[-1, 1].
  config.model.noise_dim = 128
  config.model.num_categorical_codes = 10
  config.model.num_continuous_codes = args.continuous
  config.model.q_hidden = 128                    # Width of the Q head's hidden layer.
  config.objective.auxiliary = "infogan"
  config.objective.info_weight = 1.0             # Categorical codes' cross-entropy.
  config.objective.continuous_weight = 0.1       # Continuous codes' Gaussian NLL.
  config.objective.info_in_d_step = True  # D's trunk learns the codes too (original code).
  config.train.curve_metrics = (*config.train.curve_metrics, "info_acc")
  if args.smoke:
    config.model.noise_dim = 8  # As in the celeba_dcgan smoke variant.
  return config
