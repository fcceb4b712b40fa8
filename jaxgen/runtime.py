"""Process-wide runtime settings shared by the CLI, experiments and tests."""

import os

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
