"""Shared parts of the config files in configs/, imported from the installed package.

Config files are loaded by file path (`config_lib.load`, ml_collections' config_flags), so
one config file cannot import another: what several of them share lives here. Each
config file still sets, in its own `get_config`, what makes it differ from the base it
starts from. Like config_lib, this module imports neither JAX nor TensorFlow, so a config
loads (and a bad field fails) in a fraction of a second.

`CONV_VAE_PRESETS` are the conv VAEs A, B, C of configs/mnist_vae.py and the studies
(also `jaxgen.models.CONV_VAE_PRESETS`).

The GAN configs, configs/{mnist,celeba}_{dcgan,acgan,infogan}.py:
  * `mnist_dcgan` and `celeba_dcgan` are the whole DCGAN config of each dataset (data,
    networks, loss, Adam, schedule), both built by `dcgan` from what they share;
  * the AC-GAN and InfoGAN configs start from their dataset's DCGAN and add their head
    with `add_acgan` or `add_infogan`;
  * `gan_smoke` is the `smoke` variant of all six.
"""

from typing import Sequence

import ml_collections
from ml_collections import config_dict

# ConvVAE fields of the architectures compared in the experiments (without
# `image_shape`, which follows the data). A matches the classic PyTorch conv VAE
# (308,357 parameters at latent 2 on 28x28x1); B is A with 3x3 stride-2 decoder kernels,
# which overlap unevenly (every other output pixel gets 2 taps per axis, the rest 1: the
# classic checkerboard case; a 5x5 kernel, 3 vs 2 taps, gave no consistent artifacts
# after training); C uses 3x3 kernels throughout and latent 10.
CONV_VAE_PRESETS = {
    "A": dict(channels=(64, 128), kernel_size=4, stride=2, padding=1,
              decoder_kernel_size=4, decoder_padding=1, output_padding=0,
              latent_dim=2),
    "B": dict(channels=(64, 128), kernel_size=4, stride=2, padding=1,
              decoder_kernel_size=3, decoder_padding=1, output_padding=1,
              latent_dim=2),
    "C": dict(channels=(64, 128), kernel_size=3, stride=2, padding=1,
              decoder_kernel_size=3, decoder_padding=1, output_padding=1,
              latent_dim=10),
}

# What figures/learning_curves.png plots for every GAN; the heads add their accuracy.
GAN_CURVE_METRICS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")

# The CelebA configs' `source=` argument -> (data.name, data.center_crop). The folder
# builder crops when it builds (140 px of 178); the catalog keeps the 178x218 originals,
# so the pipeline crops.
CELEBA_SOURCES = {
    "folder": ("celeba_folder", None),
    "catalog": ("celeb_a", 140),
}


def dcgan(*, data_name: str, batch_size: int, cache: bool, image_shape: Sequence[int],
          noise_dim: int, g_features: Sequence[int], d_features: Sequence[int],
          ema_decay: float, num_steps: int, log_every: int, eval_every: int,
          num_eval_batches: int | None) -> ml_collections.ConfigDict:
  """An unconditional DCGAN config: what every GAN config shares, around a dataset's numbers.

  Fixed here: seed 0; offline data (no download) in [-1, 1] for the tanh generator,
  splits train/test; the `dcgan` model without classes or codes, BatchNorm momentum
  0.9; the non-saturating loss without label smoothing, one D and one G update per
  step; Adam(2e-4, b1=0.5, b2=0.999) without clipping; checkpoints at every eval (3
  kept), 32 samples from the same fixed noise at every eval, the D/G learning curves.

  Args:
    data_name: data.name.
    batch_size: data.batch_size.
    cache: data.cache, whether the decoded split is kept in memory.
    image_shape: model.image_shape (H, W, C).
    noise_dim: size of G's noise input.
    g_features: G's feature counts, widest first (model.g_features).
    d_features: D's feature counts (model.d_features).
    ema_decay: decay of the EMA of G used for samples; 0 = no EMA.
    num_steps: train.num_steps.
    log_every: train.log_every.
    eval_every: train.eval_every, also train.checkpoint_every.
    num_eval_batches: batches per eval; None = the whole eval split.

  Returns:
    The (unlocked) ConfigDict.
  """
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = data_name
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = batch_size
  config.data.preprocessing = "symmetric"  # GANs see [-1, 1] (tanh generator).
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = cache

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.image_shape = tuple(image_shape)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.noise_dim = noise_dim
  config.model.g_features = tuple(g_features)
  config.model.d_features = tuple(d_features)
  config.model.num_classes = 0             # AC-GAN: add_acgan.
  config.model.num_categorical_codes = 0   # InfoGAN: add_infogan.
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
  config.objective.ema_decay = ema_decay   # EMA of G for samples; 0 = off.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = num_steps
  config.train.log_every = log_every
  config.train.eval_every = eval_every
  config.train.checkpoint_every = eval_every
  config.train.max_to_keep = 3
  # A placeholder keeps None overridable with an int from the command line.
  config.train.num_eval_batches = (config_dict.placeholder(int) if num_eval_batches is None
                                   else num_eval_batches)
  config.train.num_samples = 32            # From the same fixed noise at every eval.
  config.train.num_reconstructions = 8     # Unused by GANs (no encoder).
  config.train.progress_bar = True
  config.train.curve_metrics = GAN_CURVE_METRICS
  return config


def mnist_dcgan(steps: int = 0) -> ml_collections.ConfigDict:
  """configs/mnist_dcgan.py, the base of the MNIST AC-GAN and InfoGAN configs.

  mnist_5k (cached), batch 64; G 64-d noise -> 7x7x128 -> 14x14x64 -> 28x28x1, D 64 ->
  128 -> one logit; no EMA; eval and checkpoints every 500 steps on the whole test split.

  Args:
    steps: train.num_steps; 0 = 3,000 (~43 epochs of mnist_5k's 4,500 training digits).
  """
  return dcgan(data_name="mnist_5k", batch_size=64, cache=True, image_shape=(28, 28, 1),
               noise_dim=64, g_features=(128, 64), d_features=(64, 128), ema_decay=0.0,
               num_steps=steps or 3000, log_every=50, eval_every=500,
               num_eval_batches=None)


def celeba_dcgan(source: str = "folder", steps: int = 0,
                 label_attribute: str | None = None) -> ml_collections.ConfigDict:
  """configs/celeba_dcgan.py (Radford et al., 2016), the base of the CelebA AC-GAN and InfoGAN.

  CelebA 64x64 (not cached: 162,770 float32 faces would need ~8 GB of memory), batch
  128; G 100-d noise -> 4x4x1024 -> ... -> 64x64x3, D 128 -> 256 -> 512 -> 1024 -> one
  logit; EMA of G (0.999) for samples; eval and checkpoints every 2,500 steps on 40
  batches (5,120 test faces).

  Args:
    source: 'folder' (data.name='celeba_folder', the extracted layout, cropped when
      built) or 'catalog' (TFDS 'celeb_a', 140 px centre crop in the pipeline).
    steps: train.num_steps; 0 = 25,000 (~20 epochs of the 162,770 training faces).
    label_attribute: the attribute whose boolean becomes each batch's int label (0/1),
      e.g. 'Smiling' for an AC-GAN; None = unlabelled.

  Raises:
    ValueError: an unknown `source`.
  """
  if source not in CELEBA_SOURCES:
    raise ValueError(f"Unknown CelebA source {source!r} (config argument source={source}); "
                     f"known: {', '.join(CELEBA_SOURCES)}.")
  data_name, center_crop = CELEBA_SOURCES[source]
  config = dcgan(data_name=data_name, batch_size=128, cache=False, image_shape=(64, 64, 3),
                 noise_dim=100, g_features=(1024, 512, 256, 128),
                 d_features=(128, 256, 512, 1024), ema_decay=0.999,
                 num_steps=steps or 25_000, log_every=100, eval_every=2_500,
                 num_eval_batches=40)
  config.data.image_size = 64
  # In source pixels; None = the largest centred square (typed, so an int can override it).
  config.data.center_crop = config_dict.FieldReference(center_crop, field_type=int)
  config.data.label_attribute = (config_dict.placeholder(str) if label_attribute is None
                                 else label_attribute)
  return config


def add_acgan(config: ml_collections.ConfigDict, num_classes: int,
              aux_weight: float = 1.0) -> None:
  """Turns a DCGAN config into an AC-GAN (Odena et al., 2017) over `num_classes` labels.

  G also gets the one-hot class; D gets a `num_classes`-way class head trained with the
  cross-entropy (weight `aux_weight`) of real images against their labels and of fakes
  against the labels they were drawn for. The data must have labels.
  """
  config.model.num_classes = num_classes
  config.objective.auxiliary = "acgan"
  config.objective.aux_weight = aux_weight  # Weight of the class cross-entropy.
  config.train.curve_metrics = (*config.train.curve_metrics, "aux_acc_real")


def add_infogan(config: ml_collections.ConfigDict, *, noise_dim: int,
                num_categorical_codes: int, num_continuous_codes: int, q_hidden: int = 128,
                info_weight: float = 1.0, continuous_weight: float = 0.1) -> None:
  """Turns a DCGAN config into an InfoGAN (Chen et al., 2016); no labels are used.

  G's input becomes `noise_dim` noise, `num_categorical_codes` one-hot codes of
  model.categorical_dim values and `num_continuous_codes` codes ~ U[-1, 1]. A head Q
  (hidden width `q_hidden`) on D's trunk predicts the codes of fakes; G and Q minimise
  info_weight * the codes' cross-entropy + continuous_weight * the continuous codes'
  Gaussian NLL with the adversarial loss, and D's update adds the same terms
  (objective.info_in_d_step, as in the original InfoGAN code).
  """
  config.model.noise_dim = noise_dim
  config.model.num_categorical_codes = num_categorical_codes
  config.model.num_continuous_codes = num_continuous_codes
  config.model.q_hidden = q_hidden                   # Width of the Q head's hidden layer.
  config.objective.auxiliary = "infogan"
  config.objective.info_weight = info_weight          # Categorical codes' cross-entropy.
  config.objective.continuous_weight = continuous_weight  # Continuous codes' Gaussian NLL.
  config.objective.info_in_d_step = True  # D's trunk learns the codes too.
  config.train.curve_metrics = (*config.train.curve_metrics, "info_acc")


def smoke_schedule(config: ml_collections.ConfigDict, *, batch_size: int = 8,
                   shuffle_buffer: int = 64, num_steps: int = 4, eval_every: int = 4,
                   num_samples: int = 8, num_reconstructions: int = 8) -> None:
  """The data and train fields every `smoke` variant sets: a few small steps (tests).

  Logs every 2 steps, evaluates and checkpoints every `eval_every`, evaluates on 2
  batches and turns the progress bar off.
  """
  config.data.batch_size = batch_size
  config.data.shuffle_buffer = shuffle_buffer
  config.train.num_steps = num_steps
  config.train.log_every = 2
  config.train.eval_every = eval_every
  config.train.checkpoint_every = eval_every
  config.train.num_eval_batches = 2
  config.train.num_samples = num_samples
  config.train.num_reconstructions = num_reconstructions
  config.train.progress_bar = False


def gan_smoke(config: ml_collections.ConfigDict) -> None:
  """The `smoke` variant of the GAN configs: tiny widths, batch 8, 4 steps (tests).

  Configs whose pipeline resizes (data.image_size: CelebA) also drop to 16x16 images.
  """
  smoke_schedule(config, shuffle_buffer=100, eval_every=2, num_reconstructions=4)
  if "image_size" in config.data:
    config.data.image_size = 16
    config.data.center_crop = None  # The largest centred square.
    config.model.image_shape = (16, 16, config.model.image_shape[-1])
  config.model.noise_dim = 8
  config.model.g_features = (8, 4)
  config.model.d_features = (4, 8)
