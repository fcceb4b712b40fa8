"""Workdir paths that may be local or remote (`gs://bucket/run`), through `etils.epath`.

On a TPU VM the usual workdir is a Cloud Storage bucket. Orbax and TensorBoard take
such paths natively; everything else the run writes (config.json, metrics.jsonl,
figures, report.md, the lock) goes through these few functions, so no code path
assumes a local disk.

Object stores differ from disks in two ways that matter here: a rename is a copy, and a
written object appears whole or not at all. So `write_atomically` renames a temporary
file only on local disks and writes remote objects directly.
"""

import os

from etils import epath

from jaxgen import errors


def is_remote(path: str | os.PathLike) -> bool:
  """Whether `path` names an object store or other URI (`gs://...`), not a local path."""
  return "://" in os.fspath(path)


def resolve(path: str | os.PathLike) -> str:
  """An absolute local path, or the URI unchanged."""
  path = os.fspath(path)
  return path if is_remote(path) else os.path.abspath(path)


def check_supported(path: str) -> None:
  """Raises `errors.ConfigError` if a `gs://` workdir lacks the storage client orbax uses."""
  if not os.fspath(path).startswith("gs://"):
    return
  try:
    from google.cloud import storage  # noqa: F401  pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.ConfigError(
        f"--workdir={path} is on Cloud Storage, which needs the google-cloud-storage "
        f"package for checkpoints: pip install -e \".[gcs]\" (or pip install "
        f"google-cloud-storage), then rerun.") from None


def join(*parts: str) -> str:
  """Joins path parts; works for URIs as for local paths."""
  return os.fspath(epath.Path(parts[0]).joinpath(*parts[1:]))


def exists(path: str) -> bool:
  return epath.Path(path).exists()


def makedirs(path: str) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path: str) -> str:
  return epath.Path(path).read_text()


def read_bytes(path: str) -> bytes:
  return epath.Path(path).read_bytes()


def list_names(directory: str) -> list[str]:
  """The names in `directory`, sorted; [] when it does not exist."""
  directory = epath.Path(directory)
  if not directory.exists():
    return []
  return sorted(p.name for p in directory.iterdir())


def write_atomically(path: str, data: bytes | str) -> None:
  """Writes `path` so that a reader or a crash never sees half of it."""
  data = data.encode() if isinstance(data, str) else data
  target = epath.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(path):
    target.write_bytes(data)  # An object store publishes an object only when complete.
    return
  temporary = target.with_name(target.name + ".tmp")
  temporary.write_bytes(data)
  os.replace(temporary, target)


def append_line(path: str, line: str) -> None:
  """Appends one line (a newline is added) and flushes it."""
  with epath.Path(path).open("a") as f:
    f.write(line + "\n")


def remove(path: str) -> None:
  epath.Path(path).unlink(missing_ok=True)


def remove_tree(path: str) -> None:
  """Deletes the folder `path` and everything in it."""
  epath.Path(path).rmtree(missing_ok=True)


def parent(path: str) -> str:
  return os.fspath(epath.Path(path).parent)


def rename(source: str, target: str) -> None:
  """Moves `source` to `target` (a copy and delete on object stores)."""
  epath.Path(source).rename(target)
