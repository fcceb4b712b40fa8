r"""KL-weight ablation: one VAE per KL weight (1, 100, 0), trained together with jax.vmap.

The loss is reconstruction NLL + w * KL for each weight w; the `sweep` objective trains
every weight in one program (one compile, one pass over the data). The study
(experiments/kl_ablation/run.py) runs latent 20 and 50 and writes the report:

  python experiments/kl_ablation/run.py --workdir=runs/kl_ablation [--quick]

One sweep directly:

  python -m jaxgen.main --config=configs/kl_ablation.py:latent=20 --workdir=runs/kl_20

Variants by argument (comma separated):

  configs/kl_ablation.py:latent=50        # latent size (20 by default)
  configs/kl_ablation.py:model=A          # conv VAE A instead of the MLP VAE (see below)
  configs/kl_ablation.py:steps=3000       # training steps
  configs/kl_ablation.py:quick            # the study's --quick length
  configs/kl_ablation.py:smoke            # a few steps, for tests

As in the reproduced report: Adam, learning rate 1e-4, batch 100. The default model is
the MLP VAE 784-512-256-latent: vmapped dense layers batch well everywhere. Conv models
work too, but on CPU XLA lowers convolutions with a different kernel per copy to
grouped convolutions, several times slower than the copies one after another; use them
on accelerators. Other weights: --config.objective.sweep_values="(1.0, 10.0, 0.0)".
Any prepared dataset by config, e.g. 64x64 faces: --config.data.name=... with a
matching --config.model.image_shape.
"""

import os

import ml_collections

from jaxgen import config_lib

# Weights of the reproduced report: the ELBO (1), a heavy KL (100) and none (0: a plain
# autoencoder with a noisy code).
KL_WEIGHTS = (1.0, 100.0, 0.0)
QUICK_STEPS = 1500
FULL_STEPS = 6000  # ~133 epochs of mnist_5k's 4,500 training digits at batch 100.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "latent=N,model=A|B|C|mlp,steps=N,quick,smoke"."""
  args = config_lib.parse_arg(arg, {"latent": 20, "model": "mlp", "steps": 0,
                                    "quick": False, "smoke": False})
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_vae.py")
  config = config_lib.load(f"{base}:model={args.model},latent={args.latent}"
                           + (",smoke" if args.smoke else ""))
  config.objective.inner = config.objective.name
  config.objective.name = "sweep"
  config.objective.sweep_field = "objective.beta"
  config.objective.sweep_values = KL_WEIGHTS

  config.optimizer.learning_rate = 1e-4
  if args.smoke:
    config.train.num_steps = args.steps or config.train.num_steps
  else:
    config.data.batch_size = 100
    config.train.num_steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    config.train.eval_every = max(config.train.num_steps // 10, 1)
    config.train.checkpoint_every = config.train.eval_every
    config.train.log_every = max(config.train.num_steps // 100, 1)
  config.train.num_samples = 24
  config.train.curve_metrics = ("loss",)
  return config
