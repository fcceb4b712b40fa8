"""What each benchmark trains: a jaxgen config and a batch size (shared by both workers)."""

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Spec:
  """One benchmarked model.

  Attributes:
    config: config spec as for --config ("configs/mnist_vae.py:model=A").
    batch_size: images per step.
    image_shape: (H, W, C) of the synthetic batch.
    num_classes: labels drawn for the batch (conditional models need them).
    dataset: the dataset whose input pipeline is timed against the step.
    overrides: config fields set on top of `config`, as {"model.dtype": "bfloat16"}.
  """
  config: str
  batch_size: int
  image_shape: tuple[int, int, int]
  num_classes: int = 10
  dataset: str | None = "mnist_5k"
  overrides: tuple[tuple[str, str], ...] = ()


SPECS = {
    "mlp_vae": Spec("configs/mnist_vae.py:model=mlp", 100, (28, 28, 1)),
    "conv_vae_a": Spec("configs/mnist_vae.py:model=A", 128, (28, 28, 1)),
    "conv_vae_b": Spec("configs/mnist_vae.py:model=B", 128, (28, 28, 1)),
    "conv_vae_c": Spec("configs/mnist_vae.py:model=C", 128, (28, 28, 1)),
    "frey_vae": Spec("configs/frey_vae.py", 100, (28, 20, 1), dataset=None),
    "celeba_vae": Spec("configs/celeba_vae.py", 64, (64, 64, 3), num_classes=2, dataset=None),
    # Half ResNet-18's width: a quarter of its FLOPs, so a step takes seconds, not tens.
    "resnet_vae": Spec("configs/cifar10_resnet_vae.py:width=32", 64, (32, 32, 3),
                       dataset=None),
    "dcgan": Spec("configs/celeba_dcgan.py", 64, (64, 64, 3), num_classes=2, dataset=None),
    # Mixed precision: bfloat16 compute, float32 parameters and optimizer state.
    "conv_vae_a_bf16": Spec("configs/mnist_vae.py:model=A", 128, (28, 28, 1),
                            overrides=(("model.dtype", "bfloat16"),)),
    "dcgan_bf16": Spec("configs/celeba_dcgan.py", 64, (64, 64, 3), num_classes=2, dataset=None,
                       overrides=(("model.dtype", "bfloat16"),)),
}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str):
  """The jaxgen config of benchmark `name` with its batch size (no JAX import).

  Both workers build their step from this one config, so the PyTorch network follows
  whatever the config (and so jaxgen) trains.
  """
  from jaxgen import config_lib  # Imports ml_collections only.
  if name not in SPECS:
    raise ValueError(f"Unknown benchmark {name!r}; known: {', '.join(SPECS)}.")
  spec = SPECS[name]
  config = config_lib.load(os.path.join(REPO, spec.config),
                           **{field.replace(".", "__"): value for field, value in spec.overrides})
  config.data.batch_size = spec.batch_size
  if tuple(config.model.image_shape) != spec.image_shape:
    raise ValueError(f"benchmarks/specs.py: {name}'s image_shape {spec.image_shape} differs "
                     f"from {spec.config}'s model.image_shape "
                     f"{tuple(config.model.image_shape)}; update the spec.")
  return config


def available() -> list[str]:
  """Benchmarks whose config file exists in this checkout."""
  return [name for name, spec in SPECS.items()
          if os.path.exists(os.path.join(REPO, spec.config.split(":")[0]))]
