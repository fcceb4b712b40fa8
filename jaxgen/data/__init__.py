"""Datasets (`builders`) and the input pipeline (`input_pipeline`).

The first use of a name below imports TensorFlow and registers the local TFDS builders
(`mnist_5k`, `sklearn_digits`, `celeba_folder`, `celeb_a`, `frey_faces`, `image_folder`),
so `tfds.builder("mnist_5k")` works too. Importing the package alone does not: TensorFlow
takes seconds to import and most of a process's memory, and the CLI, user errors,
config checks and benchmarks need none of it.
"""

import importlib
from typing import Any

# Public name -> the submodule that defines it.
_EXPORTS = {
    "CATALOG_URL": "builders", "DatasetNotPreparedError": "builders",
    "FILE_DATASETS": "builders", "FileDataset": "builders", "get_builder": "builders",
    "LOCAL_BUILDERS": "builders", "register_file_dataset": "builders",
    "resolve_manual_dir": "builders",
    "DatasetInfo": "input_pipeline", "get_dataset_info": "input_pipeline",
    "make_eval_batches": "input_pipeline", "make_train_iterator": "input_pipeline",
    "PREPROCESSING": "input_pipeline",
    "Mnist5k": "mnist_5k", "SklearnDigits": "sklearn_digits",
}
# Imported for their registrations before any name is handed out.
_REGISTERING_MODULES = ("celeba", "frey_faces", "image_folder")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  """Imports the data modules on first use of one of their names (PEP 562)."""
  if name not in _EXPORTS:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  for module in _REGISTERING_MODULES:
    importlib.import_module(f"{__name__}.{module}")
  value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
  globals()[name] = value  # Later uses skip this function.
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
