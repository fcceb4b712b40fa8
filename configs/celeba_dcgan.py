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
batch 128, non-saturating loss, EMA of G (0.999) for samples. 25,000 steps are ~20 epochs
of the 162,770 training faces. configs/celeba_acgan.py and configs/celeba_infogan.py
start from this config.
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib

# source=... -> (data.name, data.center_crop). The folder builder crops when it builds
# (140 px of 178); the catalog keeps the 178x218 originals, so the pipeline crops.
SOURCES = {
    "folder": ("celeba_folder", None),
    "catalog": ("celeb_a", 140),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"source": "folder", "steps": 0, "smoke": False})
  if args.source not in SOURCES:
    raise ValueError(f"Unknown CelebA source {args.source!r} (config argument "
                     f"source={args.source}); known: {', '.join(SOURCES)}.")
  data_name, center_crop = SOURCES[args.source]

  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = data_name
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = 128
  config.data.preprocessing = "symmetric"  # GANs see [-1, 1] (tanh generator).
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  # Not cached: 162,770 float32 faces would need ~8 GB of memory.
  config.data.cache = False
  config.data.image_size = 64
  # In source pixels; None = the largest centred square (typed, so an int can override it).
  config.data.center_crop = config_dict.FieldReference(center_crop, field_type=int)
  # An attribute whose boolean becomes each batch's int label; the AC-GAN sets it.
  config.data.label_attribute = config_dict.placeholder(str)

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.image_shape = (64, 64, 3)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.noise_dim = 100
  config.model.g_features = (1024, 512, 256, 128)  # G's widths, widest first.
  config.model.d_features = (128, 256, 512, 1024)
  config.model.num_classes = 0             # AC-GAN: configs/celeba_acgan.py.
  config.model.num_categorical_codes = 0   # InfoGAN: configs/celeba_infogan.py.
  config.model.categorical_dim = 10        # Values of each categorical code.
  config.model.num_continuous_codes = 0
  config.model.bn_momentum = 0.9

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "adversarial"
  config.objective.loss = "nonsaturating"  # nonsaturating | hinge
  config.objective.label_smoothing = 0.0   # one-sided: real targets 1 - s.
  config.objective.auxiliary = "none"      # none | acgan | infogan
  config.objective.d_steps = 1
  config.objective.g_steps = 1
  config.objective.ema_decay = 0.999       # EMA of G for samples; 0 = off.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = args.steps or 25_000
  config.train.log_every = 100
  config.train.eval_every = 2_500
  config.train.checkpoint_every = 2_500
  config.train.max_to_keep = 3
  config.train.num_eval_batches = 40       # 5,120 test faces.
  config.train.num_samples = 32            # From the same fixed noise at every eval.
  config.train.num_reconstructions = 8     # Unused by GANs (no encoder).
  config.train.progress_bar = True
  # figures/learning_curves.png; the AC-GAN and InfoGAN heads add their accuracy.
  config.train.curve_metrics = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real",
                                "d_acc_fake")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=100, num_steps=4,
                                   eval_every=2, num_samples=8, num_reconstructions=4)
    config.data.image_size = 16
    config.data.center_crop = None  # The largest centred square.
    config.model.image_shape = (16, 16, 3)
    config.model.noise_dim = 8
    config.model.g_features = (8, 4)
    config.model.d_features = (4, 8)
  return config
