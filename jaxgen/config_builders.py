"""Generic parts of the config files in configs/: no experiment's numbers live here.

Each config file in configs/ spells its own hyperparameters; a derived config starts
from another file with `config_lib.load` and overrides fields. What remains here:

  * `CONV_VAE_PRESETS`, the named conv VAE architectures A, B, C that configs pick by
    name (`configs/mnist_vae.py:model=B`) and `jaxgen.models` exports for its tests;
  * `smoke_schedule`, which sets the data and train fields of a `smoke` variant from
    explicit arguments.

Like config_lib, this module imports neither JAX nor TensorFlow, so a config loads (and a
bad field fails) in a fraction of a second.
"""

import ml_collections

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


def smoke_schedule(config: ml_collections.ConfigDict, *, batch_size: int,
                   shuffle_buffer: int, num_steps: int, eval_every: int, num_samples: int,
                   num_reconstructions: int) -> None:
  """Sets the data and train fields of a `smoke` variant: a few small steps (tests).

  Besides the arguments, a smoke run logs every 2 steps, checkpoints at every eval,
  evaluates on 2 batches and turns the progress bar off.

  Args:
    config: the config to change in place.
    batch_size: data.batch_size.
    shuffle_buffer: data.shuffle_buffer.
    num_steps: train.num_steps.
    eval_every: train.eval_every, also train.checkpoint_every.
    num_samples: train.num_samples.
    num_reconstructions: train.num_reconstructions.
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
