"""The interval a dataset's images lie in after preprocessing: one object, one place.

`data.preprocessing` decides it ('unit' and the binarizations give [0, 1], 'symmetric'
gives [-1, 1]). The input pipeline converts 8-bit pixels with `from_uint8`; objectives,
figures and evaluators map back with `to_unit` (figures and feature networks take [0, 1])
and check what their likelihood needs through `levels`. Nothing else in jaxgen tests the
preprocessing's name for its range. Light on purpose: no JAX or TensorFlow import, so
configs are checked before either loads.
"""

import dataclasses
from typing import Any

from jaxgen import config_lib
from jaxgen import registry


@dataclasses.dataclass(frozen=True)
class ValueRange:
  """Images lie in [low, high] on `levels` evenly spaced values.

  Attributes:
    preprocessing: the `data.preprocessing` name that gives this range.
    low, high: the interval's ends.
    levels: 256 for 8-bit grey levels, 2 for binarized images.
  """
  preprocessing: str
  low: float
  high: float
  levels: int = 256

  @property
  def width(self) -> float:
    return self.high - self.low

  @property
  def interval(self) -> tuple[float, float]:
    return (self.low, self.high)

  def from_uint8(self, pixels: Any) -> Any:
    """8-bit values (as floats, any array type) -> this range; the pipeline's conversion."""
    return pixels / (255.0 / self.width) + self.low

  def to_unit(self, images: Any) -> Any:
    """Images in this range -> [0, 1] (works on numpy, JAX and TensorFlow arrays)."""
    return (images - self.low) / self.width

  def from_unit(self, images_unit: Any) -> Any:
    """Images in [0, 1] -> this range."""
    return images_unit * self.width + self.low


VALUE_RANGES: dict[str, ValueRange] = {
    "unit": ValueRange("unit", 0.0, 1.0),
    "symmetric": ValueRange("symmetric", -1.0, 1.0),
    "binarize_dynamic": ValueRange("binarize_dynamic", 0.0, 1.0, levels=2),
    "binarize_static": ValueRange("binarize_static", 0.0, 1.0, levels=2),
}


def of_data(data_config: Any) -> ValueRange:
  """The range a `data` config's preprocessing gives (ValueError for unknown names)."""
  name = config_lib.with_defaults(data_config, "data").preprocessing
  return registry.lookup("preprocessing", name, VALUE_RANGES, "data.preprocessing")
