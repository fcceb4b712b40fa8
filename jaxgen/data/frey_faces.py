"""TFDS builder for `frey_faces`: 1,965 grey-scale 28x20 frames of Brendan Frey's face.

Source: Sam Roweis' `frey_rawface.mat` (https://cs.nyu.edu/~roweis/data/frey_rawface.mat,
md5 5aeb024d42b8a6091f30e5eb18c8a48d): a MATLAB file whose variable `ff` is a uint8
array of shape (560, 1965), one frame per column, each column a 28x20 image in row-major
order (`ff[:, i].reshape(28, 20)`).

Building takes the file from the manual dir (`data.manual_dir`, default
<data_dir>/downloads/manual), or downloads it when `data.download=True` (never by
default). The md5 is always checked: a different or damaged file fails with a message
naming both digests, and a failed build leaves nothing in the data dir.

Splits (fixed, deterministic): the frames are consecutive video frames, so the split is
by time, not random: `test` = the last ceil(10%) of the frames (197 of 1,965), `train`
= the first 1,768. Neighbouring frames are near-duplicates; a time split keeps the test
frames from being copies of training ones (except at the boundary).
"""

import math
import os

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import builder_utils
from jaxgen.data import builders

URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FILE_NAME = "frey_rawface.mat"
# The md5 of Roweis' file. Read when a build starts (tests of the builder on small fake
# files patch it).
MD5 = "5aeb024d42b8a6091f30e5eb18c8a48d"
HEIGHT, WIDTH = 28, 20
NUM_FRAMES = 1965
TEST_FRACTION = 0.1

_INSTRUCTIONS = (
    f"Frey faces need {FILE_NAME} (md5 {MD5}) from {URL}: download it on a machine with "
    f"internet and copy it into the manual dir.")


class ChecksumError(ValueError):
  """A source file's md5 differs from the expected one."""


def load_frames(path: str) -> np.ndarray:
  """Reads and checks `frey_rawface.mat`.

  Args:
    path: the .mat file.

  Returns:
    uint8 frames of shape (N, 28, 20, 1), in file order.

  Raises:
    ChecksumError: the file's md5 is not `MD5`.
    ValueError: the file has no uint8 variable `ff` of shape (560, N).
  """
  import scipy.io  # Only building needs it.
  digest = builder_utils.file_md5(path)
  if digest != MD5:
    raise ChecksumError(
        f"{path} has md5 {digest}, but {FILE_NAME} has md5 {MD5}: it is damaged or a "
        f"different file. Delete it and download it again from {URL} (the dataset was "
        f"not built; nothing was written to the data dir).")
  ff = scipy.io.loadmat(path).get("ff")
  if ff is None or ff.ndim != 2 or ff.shape[0] != HEIGHT * WIDTH:
    raise ValueError(f"{path}: expected a variable 'ff' of shape ({HEIGHT * WIDTH}, N), "
                     f"got {None if ff is None else ff.shape}.")
  if ff.dtype != np.uint8:
    raise ValueError(f"{path}: 'ff' should hold uint8 pixels, got {ff.dtype}.")
  return np.ascontiguousarray(ff.T).reshape(-1, HEIGHT, WIDTH, 1)


def split_sizes(num_frames: int) -> tuple[int, int]:
  """(train, test) sizes: the last ceil(TEST_FRACTION * n) frames are the test split."""
  num_test = math.ceil(TEST_FRACTION * num_frames)
  return num_frames - num_test, num_test


class FreyFaces(builder_utils.CleanFailedBuildMixin, tfds.core.GeneratorBasedBuilder):
  """Brendan Frey's face: 28x20 grey-scale video frames, no labels."""

  name = "frey_faces"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(HEIGHT, WIDTH, 1)),
        }),
        # Keep frame order: example i of a split is frame i of that part of the video.
        disable_shuffling=True,
        homepage="https://cs.nyu.edu/~roweis/data.html",
    )

  def _source_path(self, dl_manager) -> str:
    try:
      manual = os.path.join(os.fspath(dl_manager.manual_dir), FILE_NAME)
    except AssertionError:  # No manual dir (or an empty one).
      manual = None
    if manual and os.path.exists(manual):
      return manual
    # Only reached with data.download=True (the input pipeline checks first).
    return os.fspath(dl_manager.download(URL))

  def _split_generators(self, dl_manager):
    frames = load_frames(self._source_path(dl_manager))
    num_train, _ = split_sizes(len(frames))
    return {
        "train": self._generate_examples(frames, range(num_train)),
        "test": self._generate_examples(frames, range(num_train, len(frames))),
    }

  def _generate_examples(self, frames, indices):
    for i in indices:  # The frame index is the key: splits keep video order.
      yield i, {"image": frames[i]}


def _make_builder(data_config) -> FreyFaces:
  return FreyFaces(data_dir=data_config.data_dir)


builders.register_file_dataset("frey_faces", builders.FileDataset(
    make_builder=_make_builder,
    required_files=(FILE_NAME,),
    instructions=_INSTRUCTIONS,
    can_download=True,
))
