r"""Conv VAE on Brendan Frey's face (28x20 grey frames): 5 convs, 5 mirrored transposed convs.

Needs frey_rawface.mat in the manual dir (<data_dir>/downloads/manual, or
--config.data.manual_dir=DIR); --config.data.download=True fetches it where there is
internet. The md5 is checked either way.

  python -m jaxgen.main --config=configs/frey_vae.py --workdir=runs/frey_vae

Variants by argument (comma separated):

  configs/frey_vae.py:latent=10          # another latent size (2 gives the traversal grid)
  configs/frey_vae.py:filters=32         # initial filters (layer i has filters * 2**i)
  configs/frey_vae.py:kernel=5,padding=2 # another kernel / padding
  configs/frey_vae.py:likelihood=bernoulli # the Bernoulli decoder of grey levels (see below)
  configs/frey_vae.py:smoke              # a few steps of a tiny model, for tests

The stride of each layer is `model.stride`, e.g. --config.model.stride="(2,1,2,1,1)".

Likelihood: a Gaussian decoder with a fixed standard deviation of 0.1 grey levels (in
[0, 1]), as Kingma & Welling (2014) used a Gaussian decoder for these faces. Frey's pixels
are mid-grey (a Bernoulli of them costs 0.60 of at most 0.69 nats per pixel even for a
perfect reconstruction), so under a Bernoulli decoder the whole room between the training
mean image (352.2 nats per face on the test frames) and perfect reconstruction (335.8) is
16 nats: a VAE cannot clearly beat a constant image there (one beat it by 1.1 nats). The
pixels vary by roughly 0.1 around the mean image (estimated from those two numbers), so
with sigma = 0.1 every halving of the squared error is worth a few hundred nats, and the
mean image's NLL at that sigma is near the best a constant-image Gaussian can score.
"""

import math

import ml_collections
from ml_collections import config_dict

from jaxgen import config_builders
from jaxgen import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` is "latent=N,filters=N,kernel=K,padding=P,
  likelihood=gaussian|bernoulli,smoke"."""
  args = config_lib.parse_arg(arg, {"latent": 2, "filters": 16, "kernel": 3, "padding": 1,
                                    "likelihood": "gaussian", "smoke": False})
  if args.likelihood not in ("gaussian", "bernoulli"):
    raise ValueError(f"Unknown likelihood {args.likelihood!r} in configs/frey_vae.py; "
                     f"known: gaussian, bernoulli.")
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "frey_faces"
  config.data.data_dir = config_dict.placeholder(str)    # None = TFDS default.
  config.data.manual_dir = config_dict.placeholder(str)  # None = <data_dir>/downloads/manual.
  config.data.download = False           # True may fetch frey_rawface.mat (needs internet).
  config.data.batch_size = 100
  config.data.preprocessing = "unit"     # Grey levels in [0, 1].
  config.data.train_split = "train"      # The first 1,768 frames.
  config.data.eval_split = "test"        # The last 197 frames.
  config.data.shuffle_buffer = 2_000
  config.data.cache = True

  config.model = ml_collections.ConfigDict()
  config.model.name = "conv5_vae"
  config.model.image_shape = (28, 20, 1)
  config.model.dtype = "float32"  # compute dtype; "bfloat16" keeps params and optimizer in float32.
  config.model.initial_filters = args.filters
  config.model.num_layers = 5
  config.model.kernel_size = args.kernel
  config.model.stride = (1, 2, 1, 2, 1)  # 28x20 -> 14x10 -> 7x5.
  config.model.padding = args.padding
  config.model.latent_dim = args.latent

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "autoencoding"
  config.objective.likelihood = args.likelihood
  config.objective.beta = 1.0
  config.objective.learn_scale = False   # gaussian: a fixed sigma, the same for every
  config.objective.gaussian_log_scale = math.log(0.1)  # model and reference decoder.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 3_600          # ~200 epochs of 1,768 frames.
  config.train.log_every = 50
  config.train.eval_every = 600
  config.train.checkpoint_every = 600
  config.train.max_to_keep = 3
  config.train.num_eval_batches = config_dict.placeholder(int)  # None = the whole split.
  config.train.num_samples = 64
  config.train.num_reconstructions = 32
  config.train.progress_bar = True
  # CPU-only hosts: 2 host devices (jaxgen/host_devices.py); 1.12-1.31x on 2 cores.
  config.train.cpu_devices = 2
  config.train.curve_metrics = ("loss", "nll_nats", "kl_nats")

  if args.smoke:
    config_builders.smoke_schedule(config, batch_size=8, shuffle_buffer=64, num_steps=4,
                                   eval_every=4, num_samples=8, num_reconstructions=8)
    config.model.initial_filters = 4
  return config
