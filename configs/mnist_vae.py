r"""VAE on MNIST digits: conv models A/B/C (kernel, stride and padding variants), or the MLP VAE.

Offline default (5,000 real MNIST digits shipped in a package, built on first use):

  python -m jaxgen.main --config=configs/mnist_vae.py --workdir=runs/vae_a

Variants by argument (comma separated):

  configs/mnist_vae.py:model=B            # "checkerboard" decoder: ConvT k3 s2 p1 op1
  configs/mnist_vae.py:model=C            # kernel 3 everywhere, latent 10
  configs/mnist_vae.py:model=A,latent=10  # any model with another latent size
  configs/mnist_vae.py:model=mlp          # MLP VAE 784-512-256-2
  configs/mnist_vae.py:protocol=binarized # the literature's protocol: dynamically binarized
                                          # training digits, one fixed binarization of the
                                          # test split, seeded by each digit's pixels (see
                                          # README, Evaluation)
  configs/mnist_vae.py:likelihood=logistic # a discretized logistic per pixel: a likelihood
                                          # of the 8-bit digits, in bits/dim comparable with
                                          # configs/mnist_gaussian.py
  configs/mnist_vae.py:init=torch         # PyTorch's default initialisation of every Dense,
                                          # conv and transposed conv (model.init)
  configs/mnist_vae.py:smoke              # a few steps, for tests
  configs/mnist_vae.py:model=mlp,full     # 100 epochs on full MNIST (prepared, see README);
                                          # the classic MLP VAE reports a test loss of
                                          # about 136 nats there

Full MNIST, once prepared in the TFDS data dir (see README):

  python -m jaxgen.main --config=configs/mnist_vae.py --workdir=runs/vae_a_full \
      --config.data.name=mnist --config.train.num_steps=47000
"""

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib

# The conv models A, B, C (jaxgen/config_builders.py; jaxgen/models/vae.py for
# each layer):
# A = ConvT(k4, s2, p1); B = "checkerboard" ConvT(k3, s2, p1, output_padding 1), where 3 is
# not a multiple of the stride; C = kernel 3 everywhere, latent 10.
MODEL_PRESETS = {name: dict(name="conv_vae", **fields)
                 for name, fields in config_builders.CONV_VAE_PRESETS.items()}
# The classic MLP VAE 784-512-256-2.
MODEL_PRESETS["mlp"] = dict(name="mlp_vae", hidden_sizes=(512, 256), latent_dim=2)


# Data protocols: grey levels in [0, 1] (a Bernoulli likelihood of them is a cross-entropy),
# or the literature's binarized MNIST: a fresh Bernoulli sample of every training digit each
# time it is seen, and one fixed sample of each test digit (seeded; the same in every run).
PROTOCOLS = {"grey": "unit", "binarized": "binarize_dynamic"}

# Decoder likelihoods: (objective.likelihood, model.output_params). A Bernoulli of grey levels
# is a cross-entropy (no bits/dim); the discretized logistic is a distribution over the 256
# levels of each pixel, so its -ELBO bounds the NLL of the 8-bit image.
LIKELIHOODS = {"bernoulli": ("bernoulli", 1), "logistic": ("discretized_logistic", 2)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "model=A|B|C|mlp,latent=N,protocol=grey|binarized,
  likelihood=bernoulli|logistic,init=flax|torch,full,smoke"."""
  args = config_lib.parse_arg(arg, {"model": "A", "latent": 0, "protocol": "grey",
                                    "likelihood": "bernoulli", "init": "flax", "full": False,
                                    "smoke": False})
  if args.protocol not in PROTOCOLS:
    raise ValueError(f"Unknown protocol {args.protocol!r} in configs/mnist_vae.py; known: "
                     f"{', '.join(PROTOCOLS)}.")
  if args.likelihood not in LIKELIHOODS:
    raise ValueError(f"Unknown likelihood {args.likelihood!r} in configs/mnist_vae.py; "
                     f"known: {', '.join(LIKELIHOODS)}.")
  if args.likelihood == "logistic" and args.protocol == "binarized":
    raise ValueError("configs/mnist_vae.py: likelihood=logistic models 8-bit grey levels; "
                     "binarized digits need likelihood=bernoulli (drop one of the two).")
  likelihood, output_params = LIKELIHOODS[args.likelihood]
  if args.model not in MODEL_PRESETS:
    raise ValueError(f"Unknown model variant {args.model!r} in configs/mnist_vae.py; "
                     f"known: {', '.join(MODEL_PRESETS)}.")

  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist_5k"          # 'mnist' for full MNIST once prepared.
  config.data.data_dir = config_dict.placeholder(str)    # None = TFDS default (~/tensorflow_datasets).
  config.data.manual_dir = config_dict.placeholder(str)  # None = <data_dir>/downloads/manual.
  config.data.download = False           # True lets TFDS download (needs internet).
  config.data.batch_size = 128
  config.data.preprocessing = PROTOCOLS[args.protocol]
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.shuffle_buffer = 10_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict(dict(MODEL_PRESETS[args.model]))
  config.model.image_shape = (28, 28, 1)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  # "flax": LeCun-normal kernels, zero biases; "torch": PyTorch's defaults, weights and
  # biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in every Dense, conv and transposed conv.
  config.model.init = args.init
  if args.latent:
    config.model.latent_dim = args.latent
  if output_params != 1:
    config.model.output_params = output_params  # Logistic means, then log-scales.

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "autoencoding"
  config.objective.likelihood = likelihood   # bernoulli | discretized_logistic | gaussian
  config.objective.beta = 1.0                # KL weight; 1 = the ELBO.
  config.objective.learn_scale = False       # gaussian only: learn one global log std.
  config.objective.gaussian_log_scale = -2.3  # gaussian only: fixed log std (~0.1).

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1500           # ~43 epochs of mnist_5k's 4,500 train images.
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.max_to_keep = 3
  config.train.num_eval_batches = config_dict.placeholder(int)  # None = the whole split.
  config.train.num_samples = 64
  config.train.num_reconstructions = 32
  config.train.progress_bar = True
  # CPU-only hosts: split each batch over 2 host devices (jaxgen/host_devices.py). Measured
  # on 2 cores, interleaved: conv A 1.07-1.32x the steps/s with fewer CPU seconds per
  # step; the MLP VAE 0.46x (its small matmuls lose to the all-reduce), so it keeps one.
  config.train.cpu_devices = 1 if args.model == "mlp" else 2
  config.train.curve_metrics = ("loss", "nll_nats", "kl_nats")

  if args.full:
    # The paper-length schedule: 100 epochs of the 60,000 MNIST training digits at batch 128.
    config.data.name = "mnist"
    config.train.num_steps = 47_000
    config.train.eval_every = 4_700
    config.train.checkpoint_every = 4_700

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=16, shuffle_buffer=100, num_steps=6,
                                   eval_every=3, num_samples=16, num_reconstructions=8)
  return config
