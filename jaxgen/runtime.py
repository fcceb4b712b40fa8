"""Process-wide runtime settings shared by the CLI, experiments and tests."""

import contextlib
import os
import sys
from typing import Iterator

import jax

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "jaxgen", "jax_compilation_cache")


def enable_compilation_cache(cache_dir: str | None = None,
                             min_compile_seconds: float = 0.5) -> str | None:
  """Turns on JAX's persistent compilation cache, so reruns skip XLA compiles.

  Args:
    cache_dir: where compiled programs are stored; default ~/.cache/jaxgen/...
      (or $JAXGEN_COMPILATION_CACHE_DIR). Entries are keyed by program, device and JAX
      version, so a shared cache is safe. 'none' leaves the cache off.
    min_compile_seconds: programs that compile faster than this are not stored.

  Returns:
    The cache directory, or None when it was turned off with 'none'.
  """
  cache_dir = cache_dir or os.environ.get("JAXGEN_COMPILATION_CACHE_DIR") or DEFAULT_CACHE_DIR
  if cache_dir.lower() == "none":
    return None
  os.makedirs(cache_dir, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return cache_dir


_tensorflow_started = False


def start_tensorflow(quiet: bool = False) -> None:
  """Imports TensorFlow and keeps it off GPUs/TPUs, so JAX gets all their memory.

  TensorFlow only feeds data here. Since 2.19 it prints start-up lines from C++ (CUDA
  stubs, oneDNN notices) whatever TF_CPP_MIN_LOG_LEVEL says; `quiet` sends what is
  written to the process's stderr meanwhile to /dev/null (the command line's default;
  an import error is still raised, and shown, after stderr is restored).
  """
  global _tensorflow_started
  if _tensorflow_started:
    return
  with _native_stderr_silenced() if quiet else contextlib.nullcontext():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], "GPU")
    if tf.config.list_physical_devices("TPU"):
      tf.config.set_visible_devices([], "TPU")
  _tensorflow_started = True


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
  """Points file descriptor 2 at /dev/null for the block (C++ libraries write there)."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
