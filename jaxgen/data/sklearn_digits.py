"""TFDS builder for `sklearn_digits`: scikit-learn's 1,797 8x8 handwritten digits.

The images come from `sklearn.datasets.load_digits` (UCI optical digits, shipped
with scikit-learn; no network). Pixel counts 0-16 are scaled to 0-255 uint8
(`round(v * 255 / 16)`), so the images look like any other uint8 image set.

Splits (fixed, in the original order):
  * `test`: the last 18 examples of each class (180), balanced like mnist_5k;
  * `train`: the rest (1,617).
"""

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import builder_utils

NUM_CLASSES = 10
TEST_PER_CLASS = 18

_DESCRIPTION = """\
The 1,797 8x8 handwritten digits of scikit-learn's `load_digits` (a copy of the
test set of the UCI Optical Recognition of Handwritten Digits data). Values 0-16
are scaled to 0-255 uint8. `test` holds the last 18 examples of each class (180),
`train` the other 1,617.
"""

_CITATION = """\
@misc{alpaydin1998optical,
  title={Optical Recognition of Handwritten Digits},
  author={Alpaydin, E. and Kaynak, C.},
  howpublished={UCI Machine Learning Repository},
  year={1998},
  doi={10.24432/C50P49}
}
"""


def load_arrays() -> tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (1797, 8, 8, 1), labels int64 (1797,))."""
  from sklearn import datasets  # Local import: sklearn is slow to import.
  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return images[..., None], digits.target.astype(np.int64)


class SklearnDigits(builder_utils.LabelledArrayBuilder):
  """scikit-learn's 8x8 digits."""

  name = "sklearn_digits"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  IMAGE_SHAPE = (8, 8, 1)
  NUM_CLASSES = NUM_CLASSES
  DESCRIPTION = _DESCRIPTION
  HOMEPAGE = ("https://scikit-learn.org/stable/modules/generated/"
              "sklearn.datasets.load_digits.html")
  CITATION = _CITATION

  def load_arrays(self):
    return load_arrays()

  def test_rows(self, labels):
    # The last TEST_PER_CLASS examples of each class.
    rows = np.arange(len(labels))
    in_test = np.zeros(len(labels), bool)
    for c in range(NUM_CLASSES):
      in_test[rows[labels == c][-TEST_PER_CLASS:]] = True
    return in_test
