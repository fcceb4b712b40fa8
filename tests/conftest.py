"""Shared test setup: quiet TF, one TFDS data dir per session, a JAX compile cache."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from jaxgen import runtime  # noqa: E402

# Reuse XLA compilations across test processes (xdist workers, CLI subprocesses) and
# across runs; JAXGEN_COMPILATION_CACHE_DIR=none turns it off.
if os.environ.get("JAXGEN_COMPILATION_CACHE_DIR", "").lower() != "none":
  runtime.enable_compilation_cache()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A TFDS data dir shared by the session; local builders (mnist_5k) build there once."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def figure_check(monkeypatch):
  """Checks every figure the test saves (tests/figure_checks.py); the test ends with
  `figure_check.assert_readable_under(workdir)` or `.assert_readable(paths)`."""
  import figure_checks
  from jaxgen import figures
  checker = figure_checks.FigureChecker()
  monkeypatch.setattr(figures, "save_figure", checker.wrap(figures.save_figure))
  return checker
