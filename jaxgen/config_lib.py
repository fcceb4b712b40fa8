"""Config conventions shared by every file in configs/.

Every config has the fields in REQUIRED_FIELDS. Variants are chosen by an argument
after the file name (`configs/mnist_vae.py:model=B,latent=10`), parsed here.
`validate` checks the fields with a range (FIELD_RANGES). This module imports neither
JAX nor TensorFlow, so the command line rejects a bad field within a fraction of a
second.
"""

import dataclasses
import math
import numbers
from typing import Any

import ml_collections

from jaxgen import errors


REQUIRED_FIELDS = (
    "seed", "data.name", "data.data_dir", "data.manual_dir", "data.download",
    "data.batch_size", "train.num_steps", "train.eval_every", "train.checkpoint_every",
    "model.name", "objective.name",
)

# Optional fields of the shared sections and the value a config that leaves them out
# gets: the one place these defaults live. Code reads a section through `with_defaults`
# and then by attribute. (Each family's optional `objective.*` fields sit beside it, in
# its objective module's FIELD_DEFAULTS.)
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "data_dir": None, "manual_dir": None, "download": False,
        "preprocessing": "unit", "train_split": "train", "eval_split": "test",
        "shuffle_buffer": 10_000, "cache": True, "image_size": None, "center_crop": None,
        "label_attribute": None, "include_labels": None,
        # data.name='image_folder' only (see jaxgen/data/image_folder.py).
        "image_folder": None, "grayscale": False, "bad_images": "fail", "test_fraction": 0.1,
    },
    "optimizer": {
        "name": "adam", "learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
        "weight_decay": 1e-4, "momentum": 0.9, "grad_clip_norm": None,
        "g_learning_rate": None,
        # The learning rate is multiplied by lr_boundary_scale at each of these steps.
        "lr_boundaries": (), "lr_boundary_scale": 1.0,
    },
    "train": {
        "log_every": 50, "max_to_keep": 3, "num_eval_batches": None,
        "num_reconstructions": 32, "num_samples": 64, "curve_metrics": ("loss",),
        "progress_bar": True,
        # XLA host devices the batch is split over on a CPU-only host (jaxgen/host_devices.py).
        "cpu_devices": 1,
    },
    # The model section's other fields are the model's own (their defaults live on it);
    # `init` chooses how its parameters are drawn (MODEL_INITS).
    "model": {"init": "flax"},
}


def with_defaults(section: Any, defaults: dict[str, Any] | str) -> ml_collections.ConfigDict:
  """A copy of a config section with every optional field it leaves out set to its default.

  Args:
    section: a ConfigDict (or mapping), e.g. `config.data`.
    defaults: {field: default}, or the name of a section of SECTION_DEFAULTS.

  Returns:
    A new ConfigDict: the section's fields, then the defaults of the missing ones. The
    caller's config is not changed, so what a workdir records is what the user wrote.
  """
  if isinstance(defaults, str):
    defaults = SECTION_DEFAULTS[defaults]
  fields = section.to_dict() if isinstance(section, ml_collections.ConfigDict) else dict(section)
  return ml_collections.ConfigDict({**defaults, **fields})


# Values of the optional `model.dtype`: the dtype models compute in. Parameters, optimizer
# state and BatchNorm statistics stay float32 either way, and losses are float32.
MODEL_DTYPES = ("float32", "bfloat16")
# Values of the optional `model.init`: the layers' own initialisers, or PyTorch's defaults
# for Dense, conv and transposed-conv layers (jaxgen/models/param_init.py).
MODEL_INITS = ("flax", "torch")


@dataclasses.dataclass(frozen=True)
class FieldRange:
  """The values a numeric config field takes.

  Attributes:
    kind: "int" or "float" (a float field also takes ints; bools are neither).
    low: the smallest value, or None for no lower bound.
    high: the largest value, or None for no upper bound.
    low_open: the value must be > low (otherwise >= low).
    high_open: the value must be < high (otherwise <= high).
    none: what None means where the field may be None, else None (not allowed).
    per_item: the field may also hold a tuple, each item checked.
    meaning: a few words on what the field is, for the message.
  """
  kind: str
  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False
  none: str | None = None
  per_item: bool = False
  meaning: str = ""

  def describe(self) -> str:
    """E.g. "an integer >= 1" or "a finite number in [0, 1)"."""
    what = "an integer" if self.kind == "int" else "a finite number"
    low, high = _format_number(self.low), _format_number(self.high)
    if self.low is not None and self.high is not None:
      text = (f"{what} in {'(' if self.low_open else '['}{low}, {high}"
              f"{')' if self.high_open else ']'}")
    elif self.low is not None:
      text = f"{what} {'>' if self.low_open else '>='} {low}"
    elif self.high is not None:
      text = f"{what} {'<' if self.high_open else '<='} {high}"
    else:
      text = what
    if self.per_item:
      text += " (or a tuple of such values)"
    if self.none is not None:
      text += f", or None ({self.none})"
    return text

  def accepts(self, value: Any) -> bool:
    """Whether `value` is in range (None only where allowed)."""
    if value is None:
      return self.none is not None
    if self.per_item and isinstance(value, (tuple, list)):
      return bool(value) and all(self._accepts_one(v) for v in value)
    return self._accepts_one(value)

  def _accepts_one(self, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      return False
    if self.kind == "int" and not isinstance(value, numbers.Integral):
      return False
    if not math.isfinite(value):
      return False
    if self.low is not None and (value <= self.low if self.low_open else value < self.low):
      return False
    return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _format_number(value: float | None) -> str:
  return str(int(value)) if value is not None and float(value).is_integer() else f"{value}"


def _count(low: int = 1, meaning: str = "", **kwargs) -> FieldRange:
  return FieldRange("int", low, meaning=meaning, **kwargs)


def _fraction(meaning: str, high_open: bool = True, **kwargs) -> FieldRange:
  return FieldRange("float", 0.0, 1.0, high_open=high_open, meaning=meaning, **kwargs)


def _positive(meaning: str, **kwargs) -> FieldRange:
  return FieldRange("float", 0.0, low_open=True, meaning=meaning, **kwargs)


def _weight(meaning: str) -> FieldRange:
  return FieldRange("float", 0.0, meaning=meaning)


# Every numeric field of configs/ with a range; `validate` checks those a config has.
FIELD_RANGES = {
    # The root key and the pipeline's shuffle seeds take 32-bit non-negative seeds.
    "seed": FieldRange("int", 0, 2**32 - 1, meaning="the random seed"),
    "data.batch_size": _count(meaning="the global batch size"),
    "data.shuffle_buffer": _count(meaning="examples in the shuffle buffer"),
    "data.image_size": _count(none="keep the stored size", meaning="side of the resized images"),
    "data.center_crop": _count(none="the largest centred square",
                               meaning="side of the centre crop in source pixels"),
    "data.test_fraction": FieldRange("float", 0.0, 1.0, low_open=True, high_open=True,
                                     meaning="the share of images in the test split"),
    "data.include_labels": _count(0, none="every label", per_item=True,
                                  meaning="labels kept in the training split"),
    "model.image_shape": _count(per_item=True, meaning="(H, W, C)"),
    "model.latent_dim": _count(meaning="size of the latent code"),
    "model.noise_dim": _count(meaning="size of the generator's noise input"),
    "model.kernel_size": _count(per_item=True, meaning="conv kernel size"),
    "model.decoder_kernel_size": _count(per_item=True, meaning="decoder kernel size"),
    "model.stride": _count(per_item=True, meaning="conv stride"),
    "model.padding": _count(0, per_item=True, meaning="conv padding"),
    "model.decoder_padding": _count(0, per_item=True, none="model.padding",
                                    meaning="decoder padding"),
    "model.output_padding": _count(0, per_item=True,
                                   meaning="rows/columns added by a transposed conv, "
                                           "smaller than model.stride"),
    "model.channels": _count(per_item=True, meaning="conv widths"),
    "model.features": _count(per_item=True, meaning="layer widths"),
    "model.g_features": _count(per_item=True, meaning="generator widths"),
    "model.d_features": _count(per_item=True, meaning="discriminator widths"),
    "model.hidden_sizes": _count(per_item=True, meaning="hidden layer widths"),
    "model.stage_multipliers": _count(per_item=True, meaning="width multipliers per stage"),
    "model.blocks_per_stage": _count(meaning="residual blocks per stage"),
    "model.num_layers": _count(meaning="number of layers"),
    "model.initial_filters": _count(meaning="width of the first layer"),
    "model.width": _count(meaning="base width"),
    "model.hidden": _count(meaning="hidden width"),
    "model.hidden_dim": _count(meaning="hidden width"),
    "model.g_hidden": _count(meaning="generator hidden width"),
    "model.d_hidden": _count(meaning="discriminator hidden width"),
    "model.q_hidden": _count(meaning="Q head hidden width"),
    "model.output_params": _count(meaning="decoder outputs per image channel"),
    "model.num_classes": _count(0, meaning="classes; 0 = unconditional"),
    "model.num_categorical_codes": _count(0, meaning="InfoGAN categorical codes"),
    "model.categorical_dim": _count(meaning="values of each categorical code"),
    "model.num_continuous_codes": _count(0, meaning="InfoGAN continuous codes"),
    "model.bn_momentum": _fraction("BatchNorm momentum", high_open=False),
    "objective.beta": _weight("the KL weight; 1 = the ELBO, 0 = no KL term"),
    "objective.aux_weight": _weight("weight of the AC-GAN class cross-entropy"),
    "objective.info_weight": _weight("weight of the InfoGAN code cross-entropy"),
    "objective.continuous_weight": _weight("weight of the InfoGAN continuous-code NLL"),
    "objective.label_smoothing": _fraction("one-sided label smoothing; 0 = off"),
    "objective.ema_decay": _fraction("decay of the generator's EMA; 0 = off"),
    "objective.d_steps": _count(meaning="discriminator updates per step"),
    "objective.g_steps": _count(meaning="generator updates per step"),
    "objective.gaussian_log_scale": FieldRange("float", meaning="fixed log std"),
    "objective.eps": _positive("variance added to the covariance's diagonal"),
    "objective.sample_temperature": _positive("std multiplier of tempered samples"),
    "objective.top_k": _count(meaning="principal components kept"),
    "objective.num_variant_samples": _count(meaning="images per covariance variant"),
    "objective.sweep_values": FieldRange("float", per_item=True,
                                         meaning="the swept values"),
    "optimizer.learning_rate": _positive("the step size"),
    "optimizer.g_learning_rate": _positive("the generator's step size",
                                           none="optimizer.learning_rate"),
    # 0 would clip every gradient to zero: no clipping is None.
    "optimizer.grad_clip_norm": _positive("the global gradient norm clipped to",
                                          none="no clipping"),
    "optimizer.eps": _positive("Adam's epsilon"),
    "optimizer.lr_boundaries": _count(per_item=True,
                                      meaning="steps where the learning rate drops"),
    "optimizer.lr_boundary_scale": _positive("the learning-rate factor at each boundary"),
    "optimizer.b1": _fraction("Adam's first-moment decay"),
    "optimizer.b2": _fraction("Adam's second-moment decay"),
    "optimizer.momentum": _fraction("SGD momentum"),
    "optimizer.weight_decay": _weight("AdamW's weight decay"),
    "train.num_steps": _count(0, meaning="training steps; 0 = evaluate only"),
    "train.log_every": _count(meaning="steps between train metric rows"),
    "train.eval_every": _count(meaning="steps between evaluations"),
    "train.checkpoint_every": _count(meaning="steps between checkpoints"),
    "train.max_to_keep": _count(meaning="checkpoints kept"),
    "train.num_eval_batches": _count(none="the whole eval split",
                                     meaning="batches per evaluation"),
    "train.num_samples": _count(meaning="images in the samples figure"),
    "train.cpu_devices": _count(meaning="XLA host devices on a CPU-only host, at most the "
                                "cores and a divisor of data.batch_size"),
    "train.num_reconstructions": _count(meaning="images in the reconstructions figure"),
}


# Fields naming a choice (a dataset, a model, a loss, ...); each must be a non-empty
# string. The code that uses one checks the name against its registry.
NAME_FIELDS = (
    "data.name", "data.preprocessing", "data.train_split", "data.eval_split", "model.name",
    "model.init",
    "objective.name", "objective.likelihood", "objective.loss", "objective.auxiliary",
    "objective.inner", "optimizer.name",
)


def check_model_dtype(value: Any) -> str:
  """Returns the name of a valid `model.dtype` ('float32' or 'bfloat16').

  Args:
    value: a name, or a numpy/JAX dtype (e.g. `jnp.bfloat16`).

  Raises:
    ConfigError: any other value, naming `model.dtype` and the allowed values.
  """
  name = value
  if not isinstance(value, str):
    import numpy as np
    try:
      name = np.dtype(value).name
    except TypeError:
      name = None
  if name not in MODEL_DTYPES:
    raise errors.ConfigError(
        f"Config field model.dtype must be one of {', '.join(map(repr, MODEL_DTYPES))} "
        f"(the compute dtype; parameters stay float32), got {value!r}.")
  return name


def check_model_init(value: Any) -> str:
  """Returns a valid `model.init` ('flax' or 'torch').

  Raises:
    ConfigError: any other value, naming `model.init` and the allowed values.
  """
  if value not in MODEL_INITS:
    raise errors.ConfigError(
        f"Config field model.init must be one of {', '.join(map(repr, MODEL_INITS))} "
        f"('flax': each layer's own initialisers; 'torch': PyTorch's defaults for Dense, "
        f"conv and transposed-conv layers), got {value!r}; set one of them in the config "
        f"file or with --config.model.init=<value>.")
  return value


def load(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
  """Loads a config the way `--config` does: "configs/mnist_vae.py:model=B,smoke".

  Args:
    spec: a config file path (or a bare name, looked up in configs/ of the current
      directory or of this repository), optionally followed by ":<arg>".
    **overrides: dotted field overrides with "__" for dots, e.g. train__num_steps=10.

  Returns:
    The (unlocked) ConfigDict.

  Raises:
    FileNotFoundError: no such file (the message names the path).
    ValueError: a bad argument or override (ConfigError where a field is named).
  """
  import importlib.util
  import os
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [os.path.join("configs", path + ".py"), os.path.join(repo, "configs", path + ".py")]
    path = next((c for c in candidates if os.path.exists(c)), candidates[-1])
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or "."
    known = (sorted(n[:-3] for n in os.listdir(folder) if n.endswith(".py"))
             if os.path.isdir(folder) else [])
    hint = f"{folder}/ holds {', '.join(known)}" if known else "e.g. configs/mnist_vae.py"
    raise FileNotFoundError(f"No config file {path!r}: give the path of a config file "
                            f"({hint}).")
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
    ConfigError: a key not in `defaults` (the message lists the known ones), or a value
      that does not cast.
  """
  values = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, raw = part.partition("=")
    key = key.strip()
    if key not in defaults:
      raise errors.ConfigError(f"Unknown config argument {key!r} in {arg!r}. "
                               f"Known arguments: {', '.join(sorted(defaults))}.")
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise errors.ConfigError(f"Config argument {key!r} needs a value, e.g. {key}={default}.")
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
      raise errors.ConfigError(
          f"Config argument {key}={raw!r} is not a {type(default).__name__}.") from None
  return ml_collections.ConfigDict(values)


def _lookup(config: ml_collections.ConfigDict, field: str) -> tuple[bool, Any]:
  """(present, value) of a dotted field."""
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False, None
    node = node[part]
  return True, node


def check_field(field: str, value: Any) -> None:
  """Checks one field's value against FIELD_RANGES (fields without a range pass).

  Raises:
    ConfigError: naming the field, the value, the allowed values and the fix.
  """
  allowed = FIELD_RANGES.get(field)
  if allowed is None or allowed.accepts(value):
    return
  meaning = f" ({allowed.meaning})" if allowed.meaning else ""
  raise errors.ConfigError(
      f"Config field {field}{meaning} must be {allowed.describe()}, got {value!r}; "
      f"set it in the config file or with --config.{field}=<value>.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the fields every config must have and the ranges of numeric fields.

  Cheap and free of JAX and TensorFlow: the command line runs it before importing them.
  Names in `train.curve_metrics` are checked against the objective's metrics when the
  objective is built (`jaxgen.objectives.get_objective`).

  Raises:
    ConfigError: naming the missing or invalid field and how to fix it.
  """
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.ConfigError(
        f"Expected an ml_collections.ConfigDict, got {type(config).__name__}.")
  missing = [field for field in REQUIRED_FIELDS if not _lookup(config, field)[0]]
  if missing:
    raise errors.ConfigError(f"Config is missing required field(s): {', '.join(missing)}. "
                             f"Every config defines {', '.join(REQUIRED_FIELDS)}.")
  for field in FIELD_RANGES:
    present, value = _lookup(config, field)
    if present:
      check_field(field, value)
  for field in NAME_FIELDS:
    present, value = _lookup(config, field)
    if present and not (isinstance(value, str) and value.strip()):
      raise errors.ConfigError(
          f"Config field {field} must name a choice (a non-empty string), got {value!r}; "
          f"set it in the config file or with --config.{field}=<name>.")
  present, curves = _lookup(config, "train.curve_metrics")
  if present and not (isinstance(curves, (tuple, list)) and curves
                      and all(isinstance(name, str) and name for name in curves)):
    raise errors.ConfigError(
        f"Config field train.curve_metrics must be a non-empty tuple of metric names "
        f"(e.g. ('loss',)), got {curves!r}. On the command line: "
        f"--config.train.curve_metrics=\"('loss',)\".")
  if "dtype" in config.model:
    check_model_dtype(config.model.dtype)
  if "init" in config.model:
    check_model_init(config.model.init)
