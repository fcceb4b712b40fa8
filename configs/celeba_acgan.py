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
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_lib

SOURCES = {
    # data.name, data.center_crop: the folder builder crops when it builds (140 px of
    # 178); the catalog keeps the 178x218 originals, so the pipeline crops.
    "folder": ("celeba_folder", None),
    "catalog": ("celeb_a", 140),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "attribute=NAME,source=folder|catalog,steps=N,smoke"."""
  args = config_lib.parse_arg(arg, {"attribute": "Smiling", "source": "folder", "steps": 0,
                                    "smoke": False})
  if args.source not in SOURCES:
    raise ValueError(f"Unknown source {args.source!r} in configs/celeba_acgan.py; known: "
                     f"{', '.join(SOURCES)}.")
  name, crop = SOURCES[args.source]
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = name
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)   # Where the CelebA files are.
  config.data.download = False
  config.data.batch_size = 128
  config.data.preprocessing = "symmetric"
  config.data.image_size = 64
  config.data.center_crop = config_dict.placeholder(int)
  config.data.center_crop = crop           # In source pixels; None = already square.
  config.data.label_attribute = args.attribute  # Its boolean becomes the label (0/1).
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = False  # 162,770 float32 faces would need ~8 GB of memory.

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.image_shape = (64, 64, 3)
  config.model.noise_dim = 100
  config.model.g_features = (1024, 512, 256, 128)
  config.model.d_features = (128, 256, 512, 1024)
  config.model.num_classes = 2             # Attribute off / on.
  config.model.num_categorical_codes = 0
  config.model.categorical_dim = 10
  config.model.num_continuous_codes = 0
  config.model.bn_momentum = 0.9

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "adversarial"
  config.objective.loss = "nonsaturating"  # nonsaturating | hinge
  config.objective.label_smoothing = 0.0   # one-sided: real targets 1 - s.
  config.objective.auxiliary = "acgan"     # none | acgan | infogan
  config.objective.aux_weight = 1.0        # Weight of the class cross-entropy.
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
  config.train.num_eval_batches = 40       # 5,120 test faces per eval.
  config.train.num_samples = 32            # From the same fixed noise at every eval.
  config.train.num_reconstructions = 8     # Unused by GANs (no encoder).
  config.train.progress_bar = True
  config.train.curve_metrics = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real",
                                "d_acc_fake", "aux_acc_real")

  if args.smoke:
    config.data.batch_size = 8
    config.data.shuffle_buffer = 100
    config.data.image_size = 16
    config.data.center_crop = None  # The largest centred square.
    config.model.image_shape = (16, 16, 3)
    config.model.noise_dim = 8
    config.model.g_features = (8, 4)
    config.model.d_features = (4, 8)
    config.train.num_steps = 4
    config.train.log_every = 2
    config.train.eval_every = 2
    config.train.checkpoint_every = 2
    config.train.num_eval_batches = 2
    config.train.num_samples = 8
    config.train.num_reconstructions = 4
    config.train.progress_bar = False
  return config
