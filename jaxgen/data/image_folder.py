"""TFDS builder for `image_folder`: any folder of images, e.g. anime or anomaly-detection
faces, at a chosen square size.

Config fields (`config.data`):
  image_folder  the folder: an absolute path, or a path relative to the manual dir.
  image_size    side S of the stored S x S images (default 64). Each image is converted
                to RGB (or grey, below), centre-cropped to its largest square and resized
                with a Lanczos filter.
  grayscale     store one grey channel instead of RGB (default False).
  bad_images    'fail' (default): an unreadable or corrupt image stops the build with an
                error naming the file; 'skip': such files are left out, each named in a
                warning (the build still fails if no image is readable).
  test_fraction share of each class in the `test` split (default 0.1).

Layout: either images directly in the folder (no labels), or one subfolder per class
(`folder/<class>/**/<image>`; the class names, sorted, become the int label). Files are
recognised by extension (.jpg .jpeg .png .bmp .gif .webp .tif .tiff, any case); other
files are ignored.

Splits (deterministic): within each class the files are sorted by path and permuted with
a fixed seed; the first round(test_fraction * n) go to `test`, the rest to `train`.

Each (folder, size, grey/RGB, bad_images, test_fraction) gets its own builder config,
named after the folder with a hash of the absolute path and the options, so two folders
(or two sizes) never share a TFDS cache entry. The build is cached: after changing the
images in a folder, delete <data_dir>/image_folder/<config> (the name is in the log) or
use another data dir.
"""

import hashlib
import os
import re

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from jaxgen import config_lib
from jaxgen.data import builder_utils
from jaxgen.data import builders

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BAD_IMAGE_POLICIES = ("fail", "skip")
DEFAULT_IMAGE_SIZE = 64
_SPLIT_SEED = 0

_INSTRUCTIONS = (
    "image_folder reads the folder named by data.image_folder (absolute, or relative to "
    "the manual dir): images directly in it, or one subfolder per class.")


class ImageReadError(ValueError):
  """An image file could not be decoded."""


class ImageFolderConfig(tfds.core.BuilderConfig):
  """One folder at one size (and options)."""

  def __init__(self, *, folder: str, image_size: int, grayscale: bool = False,
               bad_images: str = "fail", test_fraction: float = 0.1):
    folder = os.path.abspath(os.path.expanduser(folder))
    key = repr((folder, image_size, grayscale, bad_images, test_fraction))
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(folder.rstrip(os.sep)).lower())
    channels = "grey" if grayscale else "rgb"
    super().__init__(
        name=f"{slug.strip('_') or 'folder'}_{image_size}px_{channels}_{digest}",
        description=f"{folder} at {image_size}x{image_size} ({channels}).")
    self.folder = folder
    self.image_size = image_size
    self.grayscale = grayscale
    self.bad_images = bad_images
    self.test_fraction = test_fraction


def list_images(folder: str) -> tuple[list[tuple[str, int]], tuple[str, ...] | None]:
  """Finds the images of `folder`.

  Returns:
    ([(path, label)], class names) with label -1 and class names None for a flat
    folder; paths sorted.

  Raises:
    ValueError: images both directly in the folder and in class subfolders.
  """
  def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)

  entries = sorted(os.listdir(folder))
  top_images = [os.path.join(folder, e) for e in entries
                if is_image(e) and os.path.isfile(os.path.join(folder, e))]
  classes = []
  for entry in entries:
    path = os.path.join(folder, entry)
    if os.path.isdir(path):
      files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                     for f in names if is_image(f))
      if files:
        classes.append((entry, files))
  if classes and top_images:
    raise ValueError(
        f"data.image_folder={folder} holds images both directly in it (e.g. "
        f"{os.path.basename(top_images[0])}) and in subfolders ({classes[0][0]}/, ...). "
        f"Use one layout: all images in the folder (no labels), or one subfolder per class.")
  if not classes:
    return [(p, -1) for p in top_images], None
  items = [(p, label) for label, (_, files) in enumerate(classes) for p in files]
  return items, tuple(name for name, _ in classes)


def read_image(path: str, image_size: int, grayscale: bool) -> np.ndarray:
  """Decodes, centre-crops to a square and resizes one image.

  Returns:
    uint8 (image_size, image_size, 1 or 3).

  Raises:
    ImageReadError: the file is not a readable image (naming it).
  """
  from PIL import Image  # Only building needs it.
  try:
    with Image.open(path) as image:
      image.load()  # Decode now: truncated or corrupt data fails here, not later.
      image = image.convert("L" if grayscale else "RGB")
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ImageReadError(f"Cannot read image {path}: {e}") from e
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  image = image.crop((left, top, left + side, top + side))
  if side != image_size:
    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
  array = np.asarray(image, np.uint8)
  return array[..., None] if grayscale else array


def split_items(items: list[tuple[str, int]], test_fraction: float
                ) -> dict[str, list[tuple[str, int]]]:
  """Per class: sorted, permuted with a fixed seed, first round(f * n) -> test.

  If that leaves the test split empty (tiny classes), the first class gives it one
  image, so both splits exist.

  Raises:
    ValueError: fewer than two images.
  """
  if len(items) < 2:
    raise ValueError(f"An image folder needs at least 2 images (one per split), found "
                     f"{len(items)}.")
  rng = np.random.default_rng(_SPLIT_SEED)
  num_test = {}
  ordered = {}
  for label in sorted({label for _, label in items}):
    members = sorted(p for p, l in items if l == label)
    ordered[label] = [members[i] for i in rng.permutation(len(members))]
    num_test[label] = int(round(test_fraction * len(members)))
  if not sum(num_test.values()):
    num_test[min(num_test)] = 1
  splits = {"train": [], "test": []}
  for label, members in ordered.items():
    for rank, path in enumerate(members):
      splits["test" if rank < num_test[label] else "train"].append((path, label))
  return {k: sorted(v) for k, v in splits.items()}


class ImageFolder(builder_utils.CleanFailedBuildMixin, tfds.core.GeneratorBasedBuilder):
  """Images from a user folder, square, optionally labelled by subfolder."""

  name = "image_folder"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(self, *, folder_config: ImageFolderConfig, **kwargs):
    # The class names are part of the features, so list the folder before TFDS asks.
    self._items, self._class_names = None, None
    if os.path.isdir(folder_config.folder):
      self._items, self._class_names = list_images(folder_config.folder)
    super().__init__(config=folder_config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    channels = 1 if config.grayscale else 3
    features = {
        "image": tfds.features.Image(shape=(config.image_size, config.image_size, channels),
                                     encoding_format="png"),
        "file_name": tfds.features.Text(),
    }
    if self._class_names:
      features["label"] = tfds.features.ClassLabel(names=list(self._class_names))
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True,  # Keep path order within each split.
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The folder is named by the config.
    config = self.builder_config
    if not self._items:
      raise FileNotFoundError(f"data.image_folder={config.folder} holds no images "
                              f"({', '.join(IMAGE_EXTENSIONS)}).")
    splits = split_items(self._items, config.test_fraction)
    skipped: list[str] = []
    return {name: self._generate_examples(items, skipped) for name, items in splits.items()}

  def _generate_examples(self, items, skipped):
    config = self.builder_config
    yielded = 0
    for path, label in items:
      try:
        image = read_image(path, config.image_size, config.grayscale)
      except ImageReadError as e:
        if config.bad_images == "fail":
          raise ImageReadError(
              f"{e}. Fix or delete the file, or set data.bad_images='skip' to leave "
              f"unreadable images out (the dataset was not built).") from e
        skipped.append(path)
        logging.warning("image_folder: skipping unreadable image %s (%s)", path, e.__cause__)
        continue
      example = {"image": image, "file_name": os.path.relpath(path, config.folder)}
      if self._class_names:
        example["label"] = label
      yielded += 1
      yield example["file_name"], example
    if items and not yielded:
      raise ImageReadError(f"data.image_folder={config.folder}: none of the {len(items)} "
                           f"images of a split could be read (skipped: {skipped[:5]} ...).")


def resolve_folder(data_config, data_dir_root: str | None = None) -> str:
  """`data.image_folder` as an absolute path (relative paths are in the manual dir)."""
  data_config = config_lib.with_defaults(data_config, "data")
  folder = data_config.image_folder
  if not folder:
    raise ValueError("data.name='image_folder' needs data.image_folder, the folder of "
                     "images (absolute, or relative to data.manual_dir).")
  folder = os.path.expanduser(folder)
  if os.path.isabs(folder):
    return folder
  manual_dir = data_config.manual_dir or os.path.join(
      data_dir_root or os.path.expanduser(os.path.join("~", "tensorflow_datasets")),
      "downloads", "manual")
  return os.path.join(os.path.expanduser(manual_dir), folder)


def make_builder(data_config) -> tfds.core.DatasetBuilder:
  """The `image_folder` builder for a `data` config (validates its fields)."""
  data_config = config_lib.with_defaults(data_config, "data")
  size = data_config.image_size or DEFAULT_IMAGE_SIZE
  if not isinstance(size, int) or isinstance(size, bool) or size < 1:
    raise ValueError(f"data.image_size must be a positive int, got {size!r}.")
  if data_config.center_crop is not None:
    raise ValueError("data.name='image_folder' stores the largest centred square of each "
                     "image at data.image_size; unset data.center_crop (or crop the files).")
  bad_images = data_config.bad_images
  if bad_images not in BAD_IMAGE_POLICIES:
    raise ValueError(f"data.bad_images must be one of {', '.join(BAD_IMAGE_POLICIES)}, got "
                     f"{bad_images!r}.")
  test_fraction = float(data_config.test_fraction)
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}.")
  data_dir = data_config.data_dir
  folder = resolve_folder(data_config, data_dir)
  config = ImageFolderConfig(folder=folder, image_size=size,
                             grayscale=bool(data_config.grayscale),
                             bad_images=bad_images, test_fraction=test_fraction)
  builder = ImageFolder(folder_config=config, data_dir=data_dir)
  if builder.is_prepared():
    # Read what was built (its features, e.g. the class names) even if the folder has
    # moved or changed since.
    return tfds.builder_from_directory(builder.data_dir)
  if not os.path.isdir(folder):
    raise builders.DatasetNotPreparedError(
        f"data.image_folder={folder} does not exist (relative paths are read from "
        f"data.manual_dir); point data.image_folder at a folder of images.")
  return builder


def write_patch_folder(out_dir: str, patches_per_image: int = 200, patch_size: int = 96,
                       seed: int = 0) -> str:
  """Writes a small labelled image folder of random crops of scikit-learn's two photos.

  A stand-in for face data where none is prepared: `out_dir/china/*.png` and
  `out_dir/flower/*.png`, cut from the two sample photographs that ship inside
  scikit-learn. These are NOT faces; they only exercise the code offline.

  Returns:
    out_dir.
  """
  from PIL import Image
  from sklearn import datasets as sk_datasets
  photos = sk_datasets.load_sample_images()
  rng = np.random.default_rng(seed)
  for name, photo in zip(("china", "flower"), photos.images):
    class_dir = os.path.join(out_dir, name)
    os.makedirs(class_dir, exist_ok=True)
    height, width, _ = photo.shape
    for i in range(patches_per_image):
      top = rng.integers(0, height - patch_size + 1)
      left = rng.integers(0, width - patch_size + 1)
      patch = photo[top:top + patch_size, left:left + patch_size]
      Image.fromarray(patch).save(os.path.join(class_dir, f"{name}_{i:04d}.png"))
  return out_dir


builders.register_file_dataset("image_folder", builders.FileDataset(
    make_builder=make_builder,
    required_files=(),  # The folder comes from the config; make_builder checks it.
    instructions=_INSTRUCTIONS,
))
