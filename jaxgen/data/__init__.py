"""Datasets (`builders`) and the input pipeline (`input_pipeline`).

Importing this package registers the local TFDS builders (`mnist_5k`,
`sklearn_digits`), so `tfds.builder("mnist_5k")` works too.
"""

from jaxgen.data import celeba  # Registers celeba_folder and celeb_a (manual files).
from jaxgen.data import frey_faces  # Registers frey_faces (frey_rawface.mat).
from jaxgen.data import image_folder  # Registers image_folder (any folder of images).
from jaxgen.data.builders import CATALOG_URL
from jaxgen.data.builders import DatasetNotPreparedError
from jaxgen.data.builders import FILE_DATASETS
from jaxgen.data.builders import FileDataset
from jaxgen.data.builders import get_builder
from jaxgen.data.builders import LOCAL_BUILDERS
from jaxgen.data.builders import register_file_dataset
from jaxgen.data.builders import resolve_manual_dir
from jaxgen.data.input_pipeline import DatasetInfo
from jaxgen.data.input_pipeline import get_dataset_info
from jaxgen.data.input_pipeline import make_eval_batches
from jaxgen.data.input_pipeline import make_train_iterator
from jaxgen.data.input_pipeline import PREPROCESSING
from jaxgen.data.mnist_5k import Mnist5k
from jaxgen.data.sklearn_digits import SklearnDigits
