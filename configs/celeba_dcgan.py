r"""DCGAN on CelebA faces at 64x64 (Radford et al., 2016).

Needs CelebA on disk (no download by default), one of:
  * the extracted layout (img_align_celeba/*.jpg + list_attr_celeba.txt [+
    list_eval_partition.txt]) in the manual dir: `data.name='celeba_folder'` (default);
  * the five original files of the TFDS catalog's celeb_a in the manual dir:
    `:source=catalog` (README, Data section).

  python -m jaxgen.main --config=configs/celeba_dcgan.py --workdir=runs/celeba_dcgan \
      --config.data.manual_dir=/data/celeba

Variants by argument (comma separated):

  configs/celeba_dcgan.py:source=catalog  # TFDS celeb_a: 140 px centre crop -> 64x64
  configs/celeba_dcgan.py:steps=50000     # train longer
  configs/celeba_dcgan.py:smoke           # 16x16, tiny widths, a few steps (tests)

G: 100-d noise -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3 (k4 s2
transposed convs, BatchNorm + ReLU, tanh); D: conv k4 s2 128 -> 256 -> 512 -> 1024
(LeakyReLU 0.2, BatchNorm but on the first) -> 4x4 conv to one logit. Adam(2e-4, b1=0.5),
batch 128, non-saturating loss. 25,000 steps are ~20 epochs of the 162,770 training faces.

Every field is set by jaxgen/config_builders.py: `celeba_dcgan` (this dataset's numbers,
the sources) on `dcgan` (the defaults all GAN configs share); celeba_acgan.py and
celeba_infogan.py start from the same config.
"""

import ml_collections

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"source": "folder", "steps": 0, "smoke": False})
  config = config_builders.celeba_dcgan(args.source, steps=args.steps)  # 0 = 25,000 steps.
  if args.smoke:
    config_builders.gan_smoke(config)
  return config
