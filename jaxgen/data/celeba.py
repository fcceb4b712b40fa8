"""CelebA (Liu et al., 2015) for 64x64 face models: two routes, both TFDS.

1. `data.name='celeb_a'`: the TFDS catalog builder, built from the five original files
   placed in the manual dir (`data.manual_dir`, default <data_dir>/downloads/manual):
   `img_align_celeba.zip`, `list_attr_celeba.txt`, `list_eval_partition.txt`,
   `list_landmarks_align_celeba.txt`, `identity_CelebA.txt` (TFDS checks them against
   its registered checksums). Images stay 178x218; set `data.center_crop=140` and
   `data.image_size=64` to get the usual 64x64 faces. TFDS's own download (Google Drive,
   often over quota) happens only with `data.download=True`.
2. `data.name='celeba_folder'`: this module's builder for the extracted layout found on
   Kaggle and mirrors, given as the manual dir:
     img_align_celeba/*.jpg      the aligned faces (any size)
     list_attr_celeba.txt        the 40 attributes (1 / -1), the official text format
     list_eval_partition.txt     optional: 0 = train, 1 = validation, 2 = test
   Each image is centre-cropped to a square of side round(CROP_FRACTION * min(H, W))
   (140 px of the 178x218 originals, the same fraction for other sizes) and resized to
   `data.image_size` (default 64), then stored as PNG; one folder per size. Without the
   partition file the split is deterministic: file names sorted, the first 80.34% train,
   the next 9.81% validation, the rest test (the official partition's proportions; for
   the full 202,599 images it reproduces the official partition, which is contiguous).

Both routes give an "image" and an "attributes" dict of 40 booleans; `data.label_attribute`
(e.g. 'Smiling', 'Male') turns one into the int32 "label" of each batch.
"""

import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgen.data import image_folder
from jaxgen.data import builders
from jaxgen.data import input_pipeline

# The 40 CelebA attributes, in the order of list_attr_celeba.txt.
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips "
    "Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin "
    "Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open "
    "Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()

# 140 px of the 178 px wide originals: the crop of the DCGAN-era CelebA-64 recipes.
CROP_FRACTION = 140 / 178
DEFAULT_IMAGE_SIZE = 64
IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLITS = ("train", "validation", "test")
# Official partition sizes: images 1-162,770 train, 162,771-182,637 validation, the rest test.
_OFFICIAL_COUNTS = (162_770, 19_867, 19_962)

# Values of list_attr_celeba.txt: 1 = has the attribute; -1 (some mirrors: 0) = has not.
ATTRIBUTE_VALUES = {"1": True, "-1": False, "0": False}

CATALOG_FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt",
                 "list_landmarks_align_celeba.txt", "identity_CelebA.txt")

_FOLDER_INSTRUCTIONS = (
    f"celeba_folder reads the extracted CelebA layout: {IMAGE_DIR}/*.jpg, {ATTRIBUTE_FILE} "
    f"(and optionally {PARTITION_FILE}), e.g. from the CelebA site's 'Align&Cropped Images' "
    f"or a mirror. If the images sit one level deeper ({IMAGE_DIR}/{IMAGE_DIR}/*.jpg, as in "
    f"some archives), move them up one level.")
_CATALOG_INSTRUCTIONS = (
    "The TFDS catalog's celeb_a builds from the original files of "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive), unmodified "
    "(TFDS checks their checksums).")


def crop_size(height: int, width: int) -> int:
  """Side of the centred square crop for an image of height x width (140 for 218x178)."""
  return max(1, int(round(CROP_FRACTION * min(height, width))))


def read_attribute_file(path: str) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
  """Parses list_attr_celeba.txt.

  Format: line 1 the number of images, line 2 the attribute names, then one line per
  image: its file name and one value (1 or -1) per attribute.

  Returns:
    (attribute names, {file name: bool array, one value per attribute}).

  Raises:
    ValueError: a malformed file, naming the path, the line and what it expected.
  """
  with tf.io.gfile.GFile(path) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
  if len(lines) < 2:
    raise ValueError(f"{path}: expected a count line and a header line of attribute names.")
  names = tuple(lines[1].split())
  rows = {}
  for number, line in enumerate(lines[2:], start=3):
    parts = line.split()
    if len(parts) != len(names) + 1:
      raise ValueError(f"{path}, line {number}: expected a file name and {len(names)} "
                       f"values, got {len(parts)} fields.")
    bad = [(name, v) for name, v in zip(names, parts[1:]) if v not in ATTRIBUTE_VALUES]
    if bad:
      raise ValueError(f"{path}, line {number}: attribute {bad[0][0]} of {parts[0]} is "
                       f"{bad[0][1]!r}; the values allowed are 1 (has it) and -1 or 0 "
                       f"(has not).")
    rows[parts[0]] = np.asarray([ATTRIBUTE_VALUES[v] for v in parts[1:]])
  return names, rows


def read_partition_file(path: str) -> dict[str, str]:
  """Parses list_eval_partition.txt into {file name: 'train' | 'validation' | 'test'}."""
  partition = {}
  with tf.io.gfile.GFile(path) as f:
    for number, line in enumerate(f.read().splitlines(), start=1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
        raise ValueError(f"{path}, line {number}: expected '<file> <0|1|2>', got {line!r}.")
      partition[parts[0]] = SPLITS[int(parts[1])]
  return partition


def deterministic_split(file_names: list[str]) -> dict[str, str]:
  """Sorted names split by the official partition's proportions (see module docstring)."""
  names = sorted(file_names)
  total = sum(_OFFICIAL_COUNTS)
  first = round(len(names) * _OFFICIAL_COUNTS[0] / total)
  second = round(len(names) * (_OFFICIAL_COUNTS[0] + _OFFICIAL_COUNTS[1]) / total)
  return {name: SPLITS[0 if i < first else 1 if i < second else 2]
          for i, name in enumerate(names)}


class CelebaFolderConfig(tfds.core.BuilderConfig):
  """A stored image size (one config, and folder, per size)."""

  def __init__(self, *, image_size: int = DEFAULT_IMAGE_SIZE, **kwargs):
    kwargs.setdefault("name", f"{image_size}px")
    kwargs.setdefault("description", f"Centre-cropped, resized to {image_size}x{image_size}.")
    super().__init__(**kwargs)
    self.image_size = image_size


class CelebaFolder(tfds.core.GeneratorBasedBuilder):
  """CelebA from the extracted folder layout, cropped and resized at build time."""

  name = "celeba_folder"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [CelebaFolderConfig(image_size=DEFAULT_IMAGE_SIZE)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = _FOLDER_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "attributes": {name: np.bool_ for name in ATTRIBUTES},
            "file_name": tfds.features.Text(),
        }),
        # Keep file order, so that example i of a split is a known image.
        disable_shuffling=True,
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    )

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    attribute_path = os.path.join(manual_dir, ATTRIBUTE_FILE)
    if not tf.io.gfile.exists(attribute_path):
      raise FileNotFoundError(f"celeba_folder: {attribute_path} is missing. "
                              f"{_FOLDER_INSTRUCTIONS}")
    names, rows = read_attribute_file(attribute_path)
    missing = [a for a in ATTRIBUTES if a not in names]
    if missing:
      raise ValueError(f"{attribute_path} lacks the CelebA attribute(s) "
                       f"{', '.join(missing)}; its header names: {', '.join(names)}.")
    columns = [names.index(a) for a in ATTRIBUTES]
    images = sorted(os.path.basename(p) for p in
                    tf.io.gfile.glob(os.path.join(manual_dir, IMAGE_DIR, "*.jpg")))
    if not images:
      raise FileNotFoundError(f"celeba_folder: no {IMAGE_DIR}/*.jpg in {manual_dir}. "
                              f"{_FOLDER_INSTRUCTIONS}")
    without = [name for name in images if name not in rows]
    if without:
      raise ValueError(f"{attribute_path} has no row for {len(without)} image(s) of "
                       f"{IMAGE_DIR}/, e.g. {', '.join(without[:5])}.")
    partition_path = os.path.join(manual_dir, PARTITION_FILE)
    if tf.io.gfile.exists(partition_path):
      partition = read_partition_file(partition_path)
      unlisted = [name for name in images if name not in partition]
      if unlisted:
        raise ValueError(f"{partition_path} has no split for {len(unlisted)} image(s), e.g. "
                         f"{', '.join(unlisted[:5])}; fix it or remove it to split by file "
                         f"order.")
    else:
      partition = deterministic_split(images)
    by_split = {split: [n for n in images if partition[n] == split] for split in SPLITS}
    # TFDS cannot write an empty split (a handful of images may leave one empty).
    return {split: self._generate_examples(manual_dir, names, columns, rows, files)
            for split, files in by_split.items() if files}

  def _generate_examples(self, manual_dir, names, columns, rows, file_names):
    size = self.builder_config.image_size
    for file_name in file_names:
      path = os.path.join(manual_dir, IMAGE_DIR, file_name)
      image = _decode_jpeg(path)
      height, width = int(image.shape[0]), int(image.shape[1])
      image = input_pipeline.center_crop_and_resize(image, size, crop_size(height, width))
      values = rows[file_name][columns]
      yield file_name, {
          "image": image.numpy(),
          "attributes": {a: bool(v) for a, v in zip(ATTRIBUTES, values)},
          "file_name": file_name,
      }


def _decode_jpeg(path: str) -> tf.Tensor:
  """Decodes one face as HWC uint8 RGB.

  Raises:
    image_folder.ImageReadError: an unreadable file, naming it (TF's error does not).
  """
  try:
    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
  except tf.errors.InvalidArgumentError as e:
    reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", e.message).strip().rstrip(".")
    raise image_folder.ImageReadError(
        f"Cannot read image {path}: {reason}. Fix or delete the file (the dataset was not "
        f"built).") from None


def _folder_builder(data_config) -> tfds.core.DatasetBuilder:
  size = data_config.image_size or DEFAULT_IMAGE_SIZE
  # The registered 64 px config by name (TFDS warns about ad-hoc configs).
  config = (f"{size}px" if size == DEFAULT_IMAGE_SIZE
            else CelebaFolderConfig(image_size=size))
  return CelebaFolder(data_dir=data_config.data_dir, config=config)


def _catalog_builder(data_config) -> tfds.core.DatasetBuilder:
  return tfds.builder("celeb_a", data_dir=data_config.data_dir)


builders.register_file_dataset("celeba_folder", builders.FileDataset(
    make_builder=_folder_builder,
    required_files=(f"{IMAGE_DIR}/*.jpg", ATTRIBUTE_FILE),
    instructions=_FOLDER_INSTRUCTIONS))

builders.register_file_dataset("celeb_a", builders.FileDataset(
    make_builder=_catalog_builder,
    required_files=CATALOG_FILES,
    instructions=_CATALOG_INSTRUCTIONS,
    can_download=True))
