"""Which TFDS builder serves `data.name`, and building it when it is missing.

Three kinds of datasets:
  * local (`LOCAL_BUILDERS`): built on first use from package data, no network;
  * file datasets (`FILE_DATASETS`, registered by the modules that define them): built
    as soon as their source files are in `data.manual_dir`;
  * the TFDS catalog: built only when `data.download` is True (from the network or the
    files in manual_dir); otherwise a missing one fails at once with instructions.
"""

import contextlib
import dataclasses
import io
import os
from typing import Callable, Optional

from absl import logging
import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import registry
from jaxgen.data import mnist_5k
from jaxgen.data import sklearn_digits

DatasetNotPreparedError = errors.DatasetNotPreparedError

# Datasets built here from package data on first use; they need no network.
LOCAL_BUILDERS: dict[str, type[tfds.core.DatasetBuilder]] = {
    "mnist_5k": mnist_5k.Mnist5k,
    "sklearn_digits": sklearn_digits.SklearnDigits,
}

CATALOG_URL = "https://www.tensorflow.org/datasets/catalog/overview"


@dataclasses.dataclass(frozen=True)
class FileDataset:
  """A dataset that TFDS builds from files the user placed in `data.manual_dir`.

  Attributes:
    make_builder: returns the builder for a `data` config (a factory, so builders can
      take parameters from the config, e.g. an image folder's image size).
    required_files: glob patterns, relative to the manual dir, that must match before
      building (checked here, so a missing file fails at once instead of mid-build).
    instructions: where to get the files, shown when they are missing.
    can_download: whether the builder may fetch the files itself when
      `data.download=True`.
  """
  make_builder: Callable[[ml_collections.ConfigDict], tfds.core.DatasetBuilder]
  required_files: tuple[str, ...]
  instructions: str
  can_download: bool = False


# Datasets built automatically from files in manual_dir (filled by the modules that
# define them through `register_file_dataset`).
FILE_DATASETS: dict[str, FileDataset] = {}


def register_file_dataset(name: str, spec: FileDataset) -> None:
  """Makes `data.name=<name>` build from manual files with `spec`."""
  FILE_DATASETS[name] = spec


def resolve_manual_dir(data_config: ml_collections.ConfigDict,
                       builder: tfds.core.DatasetBuilder) -> str:
  """`data.manual_dir`, or TFDS's default <data_dir>/downloads/manual."""
  manual_dir = config_lib.with_defaults(data_config, "data").manual_dir
  if manual_dir:
    return os.path.expanduser(manual_dir)
  return os.path.join(os.fspath(builder.data_dir_root), "downloads", "manual")


def _prepare_file_dataset(name: str, spec: FileDataset,
                          data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  builder = spec.make_builder(data_config)
  if builder.is_prepared():
    return builder
  manual_dir = resolve_manual_dir(data_config, builder)
  missing = [p for p in spec.required_files
             if not tf.io.gfile.glob(os.path.join(manual_dir, p))]
  downloading = data_config.download and spec.can_download
  if missing and not downloading:
    hint = (" or rerun with --config.data.download=True where internet is available"
            if spec.can_download else "")
    raise DatasetNotPreparedError(
        f"Dataset {name!r} is not prepared in data_dir={builder.data_dir_root}, and its "
        f"source files are missing from manual_dir={manual_dir}: "
        f"{', '.join(missing)}. {spec.instructions} Place them there (or set "
        f"--config.data.manual_dir=DIR){hint}.")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _not_prepared_message(name: str, builder: tfds.core.DatasetBuilder,
                          manual_dir: Optional[str]) -> str:
  data_dir = os.fspath(builder.data_dir_root)
  manual = manual_dir or os.path.join(data_dir, "downloads", "manual")
  return (
      f"Dataset {name!r} is not prepared in data_dir={data_dir} (looked for "
      f"{builder.data_dir}), and data.download is False, so nothing is "
      f"downloaded. To prepare it, either:\n"
      f"  1. on a machine with internet run `tfds build {name} "
      f"--data_dir={data_dir}` and copy the folder {data_dir}/{builder.name} "
      f"to this machine's data_dir (set --config.data.data_dir=DIR to use "
      f"another); or\n"
      f"  2. place the pre-downloaded source files in manual_dir ({manual}; "
      f"set --config.data.manual_dir=DIR to use another) and rerun with "
      f"--config.data.download=True; or\n"
      f"  3. where internet is available, rerun with "
      f"--config.data.download=True.")


def get_builder(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Returns a prepared TFDS builder for `data_config.name`.

  Local datasets (`LOCAL_BUILDERS`) are built on first use, file datasets
  (`FILE_DATASETS`) as soon as their files are in the manual dir. A catalog dataset
  is built only when `data.download` is True (from the network, or from the
  files in `data.manual_dir`); otherwise a missing one raises at once.

  Args:
    data_config: the `data` config.

  Raises:
    ValueError: the name is neither local nor in the TFDS catalog.
    DatasetNotPreparedError: a catalog dataset is missing and download=False.
  """
  data_config = config_lib.with_defaults(data_config, "data")
  name = data_config.name
  data_dir = data_config.data_dir
  if name in LOCAL_BUILDERS:
    builder = LOCAL_BUILDERS[name](data_dir=data_dir)
    if not builder.is_prepared():
      try:
        _build_offline(builder)
      except FileExistsError:
        # Another process (a host of the same run on a shared disk) finished first.
        builder = LOCAL_BUILDERS[name](data_dir=data_dir)
        if not builder.is_prepared():
          raise
    return builder

  if name in FILE_DATASETS:
    return _prepare_file_dataset(name, FILE_DATASETS[name], data_config)

  # `name` may carry a config or version ("celeb_a:2.1.0"). Community datasets
  # are left out: listing them needs the network.
  base_name = name.split(":")[0].split("/")[0]
  if base_name not in tfds.list_builders(with_community_datasets=False):
    try:
      registry.lookup("dataset", name, {**LOCAL_BUILDERS, **FILE_DATASETS}, "data.name")
    except ValueError as e:
      raise ValueError(f"{e} Any dataset of the TFDS catalog also works: "
                       f"{CATALOG_URL}") from None
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  manual_dir = data_config.manual_dir
  if not data_config.download:
    raise DatasetNotPreparedError(
        _not_prepared_message(name, builder, manual_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _build_offline(builder: tfds.core.DatasetBuilder) -> None:
  """Builds a dataset from files already on this machine, with one log line.

  TFDS would announce "Downloading and preparing dataset" with progress bars, which
  is wrong for a build that downloads nothing and takes seconds.
  """
  logging.info("Building the %s dataset in %s (first use only; nothing is downloaded).",
               builder.name, builder.data_dir)
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare()
  finally:
    tfds.display_progress_bar(True)
