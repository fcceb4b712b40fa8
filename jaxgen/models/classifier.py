"""A small CNN image classifier, trained by the `classification` family.

It labels generated images (e.g. the class an AC-GAN digit shows) and, through `embed`,
gives a feature space for sample-quality statistics. Contract:

  logits = model.apply(variables, images)                    # (B, num_classes)
  features = model.apply(variables, images, method=model.embed)  # (B, hidden)

Architecture: per entry f of `features`, Conv2d(f, k3, s1, p1) + ReLU + 2x2 max-pool;
flatten; Dense(hidden) + ReLU (the embedding); Dense(num_classes) logits. No BatchNorm
or dropout, so the parameters are its whole state.
"""

from typing import Sequence

import flax.linen as nn
import jax

from jaxgen.models.layers import Conv2d

Array = jax.Array


class CNNClassifier(nn.Module):
  """Conv + pool stages, one hidden dense layer, class logits.

  Attributes:
    image_shape: (H, W, C) of the images.
    num_classes: number of classes.
    features: conv widths, one 3x3 conv and one 2x2 max-pool each.
    hidden: width of the embedding layer.
  """
  image_shape: tuple[int, int, int] = (28, 28, 1)
  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  hidden: int = 128

  def __post_init__(self):
    name = type(self).__name__
    if len(self.image_shape) != 3:
      raise ValueError(f"{name}: `model.image_shape` must be (H, W, C), got "
                       f"{self.image_shape!r}.")
    if self.num_classes < 2:
      raise ValueError(f"{name}: `model.num_classes` must be >= 2, got {self.num_classes}.")
    if min(self.image_shape[:2]) < 2 ** len(self.features):
      raise ValueError(f"{name}: {len(self.features)} pooling stages (`model.features`) "
                       f"shrink `model.image_shape` {tuple(self.image_shape)} to nothing.")
    super().__post_init__()

  def setup(self):
    self.convs = [Conv2d(f, 3, 1, 1) for f in self.features]
    self.hidden_layer = nn.Dense(self.hidden)
    self.head = nn.Dense(self.num_classes)

  def _check_images(self, x: Array) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"{type(self).__name__} expects images of shape "
                       f"{tuple(self.image_shape)} (`model.image_shape`), got "
                       f"{tuple(x.shape)}.")

  def embed(self, x: Array) -> Array:
    """(B, hidden) penultimate features of (B, H, W, C) images."""
    self._check_images(x)
    h = x
    for conv in self.convs:
      h = nn.max_pool(nn.relu(conv(h)), (2, 2), strides=(2, 2))
    return nn.relu(self.hidden_layer(h.reshape(h.shape[0], -1)))

  def __call__(self, x: Array) -> Array:
    """(B, num_classes) logits."""
    return self.head(self.embed(x))
