"""Helpers shared by jaxgen's TFDS builders."""

import abc
import hashlib
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds


def file_md5(path: str, chunk_size: int = 1 << 20) -> str:
  """Hex md5 digest of a file, read in chunks."""
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(chunk_size), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _existing_dirs(root: str, top: str) -> set[str]:
  """`top` and the directories below it (if any), plus root/downloads ones."""
  found = set()
  for base in (top, os.path.join(root, "downloads")):
    for dirpath, _, _ in os.walk(base):
      found.add(os.path.abspath(dirpath))
  return found


class CleanFailedBuildMixin:
  """Makes a failed `download_and_prepare` leave the data dir as it found it.

  TFDS writes into `<version>.incomplete.*` and deletes that directory when the build
  fails, but the directories it made on the way (`<data_dir>/<name>/...`,
  `<data_dir>/downloads/...`) stay behind, empty. This removes the empty directories
  the failed call created, so a failed build leaves nothing in the data dir; files
  that were there before (e.g. other builds, downloads) are never touched.
  Put it before `tfds.core.GeneratorBasedBuilder` in the bases.
  """

  def download_and_prepare(self, **kwargs):
    root = os.fspath(self.data_dir_root)
    top = os.path.join(root, self.name)
    root_existed = os.path.isdir(root)
    before = _existing_dirs(root, top)
    try:
      return super().download_and_prepare(**kwargs)
    except BaseException:
      created = sorted(_existing_dirs(root, top) - before, key=len, reverse=True)
      for path in created:  # Deepest first, so parents are empty when reached.
        try:
          os.rmdir(path)
        except OSError:
          logging.warning("A failed build of %s left %s (not empty).", self.name, path)
      if not root_existed and os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)
      raise


def labelled_image_info(builder: tfds.core.DatasetBuilder, image_shape: tuple[int, ...],
                        num_classes: int, description: str, homepage: str,
                        citation: str) -> tfds.core.DatasetInfo:
  """DatasetInfo of grey or colour images with a class label, kept in source order."""
  return tfds.core.DatasetInfo(
      builder=builder,
      description=description,
      features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=image_shape),
          "label": tfds.features.ClassLabel(num_classes=num_classes),
      }),
      supervised_keys=("image", "label"),
      # Keep the source order: example i of a split is a known row of the source data.
      disable_shuffling=True,
      homepage=homepage,
      citation=citation,
  )


class LabelledArrayBuilder(tfds.core.GeneratorBasedBuilder):
  """A labelled image dataset shipped as arrays in a Python package, in source order.

  Subclasses set `name`, VERSION, RELEASE_NOTES, IMAGE_SHAPE, NUM_CLASSES, DESCRIPTION,
  HOMEPAGE and CITATION, and define `load_arrays` and `test_rows`. Example keys are the
  source rows, so example i of a split is a known row of the source data.
  """
  IMAGE_SHAPE: tuple[int, int, int]
  NUM_CLASSES: int
  DESCRIPTION: str
  HOMEPAGE: str
  CITATION: str

  @abc.abstractmethod
  def load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W, C) uint8, labels (N,) int) in source order."""

  @abc.abstractmethod
  def test_rows(self, labels: np.ndarray) -> np.ndarray:
    """A boolean (N,) mask of the rows that form the test split (the rest is train)."""

  def _info(self) -> tfds.core.DatasetInfo:
    return labelled_image_info(self, self.IMAGE_SHAPE, self.NUM_CLASSES, self.DESCRIPTION,
                               self.HOMEPAGE, self.CITATION)

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with a Python package.
    images, labels = self.load_arrays()
    rows = np.arange(len(labels))
    in_test = self.test_rows(labels)
    return {
        "train": self._generate_examples(images, labels, rows[~in_test]),
        "test": self._generate_examples(images, labels, rows[in_test]),
    }

  def _generate_examples(self, images, labels, rows):
    # Integer keys (the source row) keep the written order = source order.
    for row in rows:
      yield int(row), {"image": images[row], "label": int(labels[row])}
