r"""The one-stochastic-layer VAE of the IWAE paper on binarized MNIST, as published.

Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (Section 5
and Appendix): encoder and decoder MLPs with two hidden layers of 200 tanh units, 50
Gaussian latents, Bernoulli decoder; Adam (b1 0.9, b2 0.999, eps 1e-4), batch 20, learning
rate 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7 (3,280 epochs); test NLL from IWAE with
k = 5,000 samples. Their Table 1 reports 86.76 nats for this VAE (trained with k = 1).

  python -m jaxgen.main --config=configs/mnist_vae_burda2016.py --workdir=runs/burda_quick
  python -m jaxgen.evaluate --workdir=runs/burda_quick --protocol=binarized

Variants by argument:

  configs/mnist_vae_burda2016.py          # quick: mnist_5k, i = 0..3 (40 epochs, 9,000 steps)
  configs/mnist_vae_burda2016.py:full     # the paper: full MNIST (prepared), i = 0..7
  configs/mnist_vae_burda2016.py:stages=2 # the first 2 (of 8) learning-rate stages
  configs/mnist_vae_burda2016.py:smoke    # a few steps, for tests

The data protocol is `configs/mnist_vae.py:protocol=binarized`: a fresh binarization of
each training digit every time it is seen, one fixed binarization of the test split (each
digit's sample seeded by its pixels).
The paper trains on MNIST's 60,000 training digits; `mnist_5k` has 4,500, so the quick
variant's NLL is worse (a smaller training set and 1/80 of the schedule).
"""

import os

import ml_collections

from jaxgen import config_lib

PAPER_NLL_NATS = 86.76  # Burda et al. (2016), Table 1: VAE, one stochastic layer, k = 1.
STAGES_FULL, STAGES_QUICK = 8, 4
TRAIN_EXAMPLES = {"mnist": 60_000, "mnist_5k": 4_500}
BATCH_SIZE = 20


def lr_boundaries(stages: int, steps_per_epoch: int) -> tuple[int, ...]:
  """Steps at which stage i (3^i epochs long) ends, for every stage but the last."""
  ends, epochs = [], 0
  for i in range(stages - 1):
    epochs += 3**i
    ends.append(epochs * steps_per_epoch)
  return tuple(ends)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "full,stages=N,smoke"."""
  args = config_lib.parse_arg(arg, {"full": False, "stages": 0, "smoke": False})
  base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_vae.py")
  config = config_lib.load(f"{base}:model=mlp,protocol=binarized"
                           + (",full" if args.full else "") + (",smoke" if args.smoke else ""))
  config.model.hidden_sizes = (200, 200)
  config.model.latent_dim = 50
  config.model.activation = "tanh"
  config.optimizer.eps = 1e-4
  config.optimizer.learning_rate = 1e-3
  config.optimizer.lr_boundary_scale = 10 ** (-1 / 7)
  config.train.curve_metrics = ("loss", "nll_nats", "kl_nats")
  if args.smoke:
    config.optimizer.lr_boundaries = (3,)
    return config
  config.data.batch_size = BATCH_SIZE
  stages = args.stages or (STAGES_FULL if args.full else STAGES_QUICK)
  steps_per_epoch = TRAIN_EXAMPLES[config.data.name] // BATCH_SIZE
  config.optimizer.lr_boundaries = lr_boundaries(stages, steps_per_epoch)
  config.train.num_steps = sum(3**i for i in range(stages)) * steps_per_epoch
  config.train.eval_every = config.train.checkpoint_every = max(
      config.train.num_steps // 10, steps_per_epoch)
  config.train.log_every = 200
  return config
