"""Generative models by name, and the layers they share."""

from typing import Any

import jax

from jaxgen import registry
from jaxgen.models.classifier import CNNClassifier
from jaxgen.models.gan import DCGAN
from jaxgen.models.gan import DCGAN_PRESETS
from jaxgen.models.gaussian import Gaussian
from jaxgen.models.layers import Conv2d
from jaxgen.models.layers import ConvTranspose
from jaxgen.models.layers import conv_output_size
from jaxgen.models.layers import conv_transpose
from jaxgen.models.layers import conv_transpose_output_size
from jaxgen.models.vae import CONV_VAE_PRESETS
from jaxgen.models.vae import ConvVAE
from jaxgen.models.vae import MLPVAE
from jaxgen.models.autoencoder import FCAutoencoder
from jaxgen.models.face_vaes import CelebAConvVAE
from jaxgen.models.face_vaes import Conv5VAE
from jaxgen.models.resnet_vae import ResNetVAE

MODELS = {
    "gaussian": Gaussian,
    "mlp_vae": MLPVAE,
    "conv_vae": ConvVAE,
    "conv5_vae": Conv5VAE,
    "celeba_conv_vae": CelebAConvVAE,
    "resnet_vae": ResNetVAE,
    "fc_autoencoder": FCAutoencoder,
    "dcgan": DCGAN,
    "cnn_classifier": CNNClassifier,
}


def get_model(name: str, **fields: Any) -> Any:
  """Builds the model registered as `name` from config fields.

  Args:
    name: a key of `MODELS` (config field `model.name`).
    **fields: the model's fields, e.g. `image_shape`, `latent_dim`.

  Returns:
    The (unbound) Flax module.

  Raises:
    ValueError: unknown name (lists the known ones), unknown field (names
      `model.<field>`), or fields that give an invalid architecture.
  """
  cls = registry.lookup("model", name, MODELS, field="model.name")
  return registry.build_with_fields("model", cls, fields, field_prefix="model.")


# `model.*` fields that say how to build a model rather than set one of its fields.
BUILD_FIELDS = ("name", "init")


def module_fields(model_config: Any) -> dict[str, Any]:
  """The fields of a config's model section that `get_model` passes to the module."""
  return {k: v for k, v in model_config.items() if k not in BUILD_FIELDS}


def count_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)))


__all__ = [
    "CNNClassifier", "DCGAN", "DCGAN_PRESETS",
    "CelebAConvVAE", "Conv5VAE", "FCAutoencoder", "ResNetVAE",
    "BUILD_FIELDS", "CONV_VAE_PRESETS", "Conv2d", "ConvTranspose", "ConvVAE", "MLPVAE", "MODELS",
    "conv_output_size", "conv_transpose", "conv_transpose_output_size",
    "count_params", "get_model", "module_fields",
]
