r"""Command line: train and evaluate one config.

  python -m jaxgen.main --config=configs/mnist_vae.py --workdir=runs/vae_a
  jaxgen-train --config=configs/mnist_vae.py:model=B --workdir=runs/vae_b \
      --config.train.num_steps=5000

Rerunning the same command on the same workdir resumes from its latest checkpoint.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:args]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, figures, report.")
flags.DEFINE_bool("jax_distributed", False,
                  "Call jax.distributed.initialize() first (multi-host TPU pods / GPU clusters).")
flags.DEFINE_string("compilation_cache_dir", None,
                    "JAX persistent compilation cache (default ~/.cache/jaxgen/...); 'none' = off.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  import jax
  if FLAGS.jax_distributed:
    jax.distributed.initialize()
  from jaxgen import runtime
  runtime.enable_compilation_cache(FLAGS.compilation_cache_dir)  # 'none' = off.
  from jaxgen import train
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def run():
  """Console-script entry point (`jaxgen-train`)."""
  app.run(main)


if __name__ == "__main__":
  run()
