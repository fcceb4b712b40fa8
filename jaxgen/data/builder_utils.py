"""Helpers shared by jaxgen's TFDS builders."""

import hashlib
import os

from absl import logging
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
