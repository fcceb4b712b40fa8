"""Config conventions shared by every file in configs/.

Every config has the fields in REQUIRED_FIELDS. Variants are chosen by an argument
after the file name (`configs/mnist_vae.py:model=B,latent=10`), parsed here.
"""

from typing import Any

import ml_collections

REQUIRED_FIELDS = (
    "seed", "data.name", "data.data_dir", "data.manual_dir", "data.download",
    "data.batch_size", "train.num_steps", "train.eval_every", "train.checkpoint_every",
    "model.name", "objective.name",
)

# Values of the optional `model.dtype`: the dtype models compute in. Parameters, optimizer
# state and BatchNorm statistics stay float32 either way, and losses are float32.
MODEL_DTYPES = ("float32", "bfloat16")


def check_model_dtype(value: Any) -> str:
  """Returns the name of a valid `model.dtype` ('float32' or 'bfloat16').

  Args:
    value: a name, or a numpy/JAX dtype (e.g. `jnp.bfloat16`).

  Raises:
    ValueError: any other value, naming `model.dtype` and the allowed values.
  """
  name = value
  if not isinstance(value, str):
    import numpy as np
    try:
      name = np.dtype(value).name
    except TypeError:
      name = None
  if name not in MODEL_DTYPES:
    raise ValueError(
        f"Config field model.dtype must be one of {', '.join(map(repr, MODEL_DTYPES))} "
        f"(the compute dtype; parameters stay float32), got {value!r}.")
  return name


def load(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
  """Loads a config the way `--config` does: "configs/mnist_vae.py:model=B,smoke".

  Args:
    spec: a config file path (or a bare name, looked up in configs/ of the current
      directory or of this repository), optionally followed by ":<arg>".
    **overrides: dotted field overrides with "__" for dots, e.g. train__num_steps=10.

  Returns:
    The (unlocked) ConfigDict.
  """
  import importlib.util
  import os
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [os.path.join("configs", path + ".py"), os.path.join(repo, "configs", path + ".py")]
    path = next((c for c in candidates if os.path.exists(c)), candidates[-1])
  if not os.path.exists(path):
    raise FileNotFoundError(f"No config file {path!r}.")
  module_name = "jaxgen_config_" + os.path.basename(path)[:-3]
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split("__")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def parse_arg(arg: str | None, defaults: dict[str, Any]) -> ml_collections.ConfigDict:
  """Parses a config-file argument like "model=B,latent=10,smoke" against `defaults`.

  Each `key=value` is cast to the type of `defaults[key]`; a bare `key` sets a boolean
  default to True.

  Raises:
    ValueError: a key not in `defaults` (the message lists the known ones), or a value
      that does not cast.
  """
  values = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, raw = part.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r} in {arg!r}. "
                       f"Known arguments: {', '.join(sorted(defaults))}.")
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ValueError(f"Config argument {key!r} needs a value, e.g. {key}={default}.")
      values[key] = True
      continue
    raw = raw.strip()
    try:
      if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
          raise ValueError(raw)
        values[key] = raw.lower() in ("true", "1")
      elif default is None:
        values[key] = raw
      else:
        values[key] = type(default)(raw)
    except ValueError:
      raise ValueError(f"Config argument {key}={raw!r} is not a {type(default).__name__}.") from None
  return ml_collections.ConfigDict(values)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the fields every config must have and their basic ranges.

  Raises:
    ValueError: naming the missing or invalid field and how to fix it.
  """
  missing = []
  for field in REQUIRED_FIELDS:
    node = config
    for part in field.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        missing.append(field)
        break
      node = node[part]
  if missing:
    raise ValueError(f"Config is missing required field(s): {', '.join(missing)}. "
                     f"Every config defines {', '.join(REQUIRED_FIELDS)}.")
  for field in ("data.batch_size", "train.num_steps", "train.eval_every",
                "train.checkpoint_every"):
    section, name = field.split(".")
    value = config[section][name]
    if not isinstance(value, int) or value < (0 if name == "num_steps" else 1):
      raise ValueError(f"Config field {field} must be a positive integer, got {value!r}.")
  if "dtype" in config.model:
    check_model_dtype(config.model.dtype)
