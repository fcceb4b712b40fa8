r"""One-class MNIST anomaly detection: a model trained on one digit only.

The standard protocol trains on the training images of one digit and scores the whole
test split (that digit = normal, every other digit = anomaly); the study repeats it for
each digit and model:

  python experiments/anomaly/run.py --workdir=runs/anomaly [--quick]

One run directly (digit 3, conv VAE):

  python -m jaxgen.main --config=configs/mnist_anomaly.py:digit=3 --workdir=runs/anomaly_vae_3

Variants by argument (comma separated):

  configs/mnist_anomaly.py:digit=7              # the normal digit (0-9)
  configs/mnist_anomaly.py:model=vae            # conv VAE A (configs/mnist_vae.py), latent 10
  configs/mnist_anomaly.py:model=ae             # fully connected autoencoder (fc_autoencoder:
                                                # BatchNorm + ReLU, tanh output, MSE on [-1, 1])
  configs/mnist_anomaly.py:latent=16            # latent / code size
  configs/mnist_anomaly.py:quick                # the study's --quick length
  configs/mnist_anomaly.py:smoke                # a few steps, for tests

It is configs/mnist_vae.py with the training split filtered to the digit
(`data.include_labels`); evaluation and scoring use the whole test split.
"""

import os

import ml_collections

from jaxgen import config_lib

MODELS = ("vae", "ae")
QUICK_STEPS = 250
FULL_STEPS = 1500  # ~210 epochs of the ~450 training images of one mnist_5k digit.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "digit=N,model=vae|ae,latent=N,steps=N,quick,smoke"."""
  args = config_lib.parse_arg(arg, {"digit": 0, "model": "vae", "latent": 10, "steps": 0,
                                    "quick": False, "smoke": False})
  if args.model not in MODELS:
    raise ValueError(f"Unknown model variant {args.model!r} in configs/mnist_anomaly.py; "
                     f"known: {', '.join(MODELS)}.")
  if not 0 <= args.digit <= 9:
    raise ValueError(f"digit={args.digit} in configs/mnist_anomaly.py must be 0-9.")
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_vae.py")
  config = config_lib.load(f"{base}:model=A,latent={args.latent}"
                           + (",smoke" if args.smoke else ""))
  config.data.include_labels = (args.digit,)
  if args.model == "ae":
    config.model = ml_collections.ConfigDict(dict(
        name="fc_autoencoder", image_shape=(28, 28, 1), hidden_dim=512,
        latent_dim=args.latent, dtype=config.model.dtype))
    config.data.preprocessing = "symmetric"  # The tanh output spans [-1, 1].
    config.objective.likelihood = "mse"
    config.train.curve_metrics = ("loss",)
  if not args.smoke:
    config.data.batch_size = 64
    config.train.num_steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    config.train.eval_every = config.train.num_steps
    config.train.checkpoint_every = config.train.num_steps
    config.train.log_every = max(config.train.num_steps // 10, 1)
    config.train.num_samples = 16
    config.train.num_reconstructions = 16
  elif args.steps:
    config.train.num_steps = args.steps
  return config
