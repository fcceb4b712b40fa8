"""Test helpers: load configs by name like the CLI does."""

import os

from jaxgen import config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None, **overrides):
  """configs/<name>.py's get_config(arg), with "__"-dotted overrides applied."""
  path = os.path.join(REPO, "configs", f"{name}.py")
  return config_lib.load(f"{path}:{arg}" if arg else path, **overrides)
