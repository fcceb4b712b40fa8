r"""ResNet VAE on CIFAR-10: ResNet-18-style encoder, residual upsampling decoder; bits/dim.

CIFAR-10 comes from the TFDS catalog: prepare it once (README, Data), e.g. by placing
cifar-10-binary.tar.gz in the manual dir and running once with --config.data.download=True.

  python -m jaxgen.main --config=configs/cifar10_resnet_vae.py --workdir=runs/cifar_rvae

Variants by argument (comma separated):

  configs/cifar10_resnet_vae.py:likelihood=gaussian  # Gaussian decoder (learned global scale)
  configs/cifar10_resnet_vae.py:width=32             # a narrower ResNet (64 = ResNet-18)
  configs/cifar10_resnet_vae.py:latent=256
  configs/cifar10_resnet_vae.py:smoke                # tiny model, a few steps, for tests

The default likelihood is a discretized logistic per sub-pixel (mean and log-scale from
the decoder), a discrete model whose negative ELBO in bits/dim compares directly with
published CIFAR-10 numbers; the Gaussian one reports bits/dim on the same 8-bit scale.
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib

LIKELIHOODS = {"logistic": ("discretized_logistic", 2), "gaussian": ("gaussian", 1)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "likelihood=logistic|gaussian,width=N,latent=N,smoke"."""
  args = config_lib.parse_arg(arg, {"likelihood": "logistic", "width": 64, "latent": 128,
                                    "smoke": False})
  if args.likelihood not in LIKELIHOODS:
    raise ValueError(f"Unknown likelihood variant {args.likelihood!r} in "
                     f"configs/cifar10_resnet_vae.py; known: {', '.join(LIKELIHOODS)}.")
  likelihood, output_params = LIKELIHOODS[args.likelihood]

  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "cifar10"
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = 64
  config.data.preprocessing = "symmetric"  # [-1, 1]; 256 levels for the likelihood.
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict()
  config.model.name = "resnet_vae"
  config.model.image_shape = (32, 32, 3)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.width = args.width
  config.model.stage_multipliers = (1, 2, 4, 8)
  config.model.blocks_per_stage = 2
  config.model.latent_dim = args.latent
  config.model.output_params = output_params  # 2 = logistic means and log-scales.

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "autoencoding"
  config.objective.likelihood = likelihood
  config.objective.beta = 1.0
  config.objective.learn_scale = True        # gaussian only: one learned global log std.
  config.objective.gaussian_log_scale = -2.3

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 5e-4
  config.optimizer.grad_clip_norm = 100.0    # Early logistic scales give large gradients.

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 39_000            # 50 epochs of 781 steps.
  config.train.log_every = 100
  config.train.eval_every = 3_900
  config.train.checkpoint_every = 3_900
  config.train.max_to_keep = 3
  config.train.num_eval_batches = config_dict.placeholder(int)
  config.train.num_samples = 64
  config.train.num_reconstructions = 32
  config.train.progress_bar = True
  config.train.curve_metrics = ("loss", "bits_per_dim", "nll_nats", "kl_nats")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=64, num_steps=4,
                                   eval_every=4, num_samples=8, num_reconstructions=8)
    config.model.width = 4
    config.model.stage_multipliers = (1, 2)  # Two stages, one block each: compiles fast.
    config.model.blocks_per_stage = 1
    config.model.latent_dim = 8
  return config
