"""Parameter initialisation schemes: the config field `model.init`.

'flax' (the default): every layer draws from its own initialisers, flax's defaults being
LeCun-normal kernels and zero biases.

'torch': every `nn.Dense`, `nn.Conv` and `layers.ConvTranspose` whose kernel (or bias)
initialiser is the framework default draws it as PyTorch's `nn.Linear`, `nn.Conv2d` and
`nn.ConvTranspose2d` do: weights kaiming_uniform(a=sqrt(5)), i.e. U(-b, b) with
b = sqrt(1/3) * sqrt(3 / fan_in) = 1 / sqrt(fan_in), and biases U(-1/sqrt(fan_in),
1/sqrt(fan_in)), with PyTorch's fan-in for each kind (`torch_fan_in`). Layers given an
initialiser of their own keep it, and BatchNorm/LayerNorm parameters stay 1 and 0, as
in PyTorch.

Usage, around the call that creates the parameters:

  with param_init.drawing(scheme):
    variables = model.init(rng, x)

Under 'torch' each such layer is intercepted on its first call during `init`: it creates
its parameters as usual, they are re-drawn from a key of the layer's own 'params' RNG
stream, and the layer runs again, so the output of `init_with_output` is that of the
re-drawn parameters. Under 'flax' nothing is intercepted: the parameters are exactly
those of a plain `model.init`.
"""

import contextlib
import dataclasses
import math
from typing import Any, ContextManager, Sequence

import flax.linen as nn
import jax

from jaxgen import config_lib
from jaxgen import errors
from jaxgen.models import layers

# The layers 'torch' re-draws, by the kind of PyTorch layer they stand for.
TORCH_KINDS = {nn.Dense: "linear", nn.Conv: "conv", layers.ConvTranspose: "conv_transpose"}


def torch_fan_in(kind: str, kernel_shape: Sequence[int]) -> int:
  """PyTorch's fan-in of a layer, from the shape of its flax kernel.

  Args:
    kind: 'linear' (flax kernel (in, out) = PyTorch weight (out, in)), 'conv' (HWIO
      (kh, kw, in / groups, out) = (out, in / groups, kh, kw)) or 'conv_transpose'
      (`layers.ConvTranspose`'s (kh, kw, in, out) = PyTorch's (in, out, kh, kw)).
    kernel_shape: the flax kernel's shape.

  Returns:
    in for 'linear', in * kh * kw for 'conv', and out * kh * kw for 'conv_transpose':
    PyTorch takes weight.size(1) times the kernel area, which for a transposed conv is
    its number of output channels.
  """
  *spatial, fan_in_channels, out_channels = kernel_shape
  if kind == "conv_transpose":
    fan_in_channels = out_channels
  elif kind not in ("linear", "conv"):
    raise ValueError(f"Unknown layer kind {kind!r}; known: {', '.join(TORCH_KINDS.values())}.")
  return fan_in_channels * math.prod(spatial)


def torch_bound(kind: str, kernel_shape: Sequence[int]) -> float:
  """1 / sqrt(fan_in): the half-width of PyTorch's uniform weight and bias draws."""
  return 1.0 / math.sqrt(torch_fan_in(kind, kernel_shape))


def scheme_of(model_config: Any) -> str:
  """The checked `model.init` of a config's model section ('flax' where it is absent)."""
  return config_lib.check_model_init(config_lib.with_defaults(model_config, "model").init)


def only_flax(model_config: Any, reason: str) -> None:
  """Raises a ConfigError naming `model.init` unless the model section asks for 'flax'.

  Args:
    model_config: the config's model section.
    reason: why this model keeps its own initialisation, for the message.
  """
  scheme = scheme_of(model_config)
  if scheme != "flax":
    raise errors.ConfigError(
        f"Config field model.init={scheme!r} does not apply to "
        f"model.name={model_config.name!r}: {reason}. Remove model.init or set it to "
        f"'flax' (the default).")


def drawing(scheme: str) -> ContextManager[None]:
  """A context in which `Module.init` draws the parameters of `scheme` ('flax' | 'torch')."""
  if config_lib.check_model_init(scheme) == "flax":
    return contextlib.nullcontext()
  return nn.intercept_methods(_torch_interceptor)


def _torch_interceptor(next_fun, args, kwargs, context):
  module = context.module
  kind = TORCH_KINDS.get(type(module))
  # Only a layer's first call while initialising creates its parameters.
  if (kind is None or context.method_name != "__call__" or not module.is_initializing()
      or module.has_variable("params", "kernel")):
    return next_fun(*args, **kwargs)
  next_fun(*args, **kwargs)
  _redraw(module, kind)
  # Rewind the layer's scope as flax does between two calls of a module, so the second
  # call reuses the parameters instead of creating them again.
  object.__setattr__(module, "scope", module.scope.rewound())
  return next_fun(*args, **kwargs)


def _redraw(module: nn.Module, kind: str) -> None:
  """Replaces the layer's default-initialised kernel and bias by PyTorch's draws."""
  kernel = module.get_variable("params", "kernel")
  bound = torch_bound(kind, kernel.shape)
  kernel_key, bias_key = jax.random.split(module.make_rng("params"))
  names = [("kernel", kernel_key)] + ([("bias", bias_key)] if module.use_bias else [])
  for name, key in names:
    if _uses_default(module, f"{name}_init"):
      value = module.get_variable("params", name)
      module.put_variable("params", name, jax.random.uniform(
          key, value.shape, value.dtype, -bound, bound))


def _uses_default(module: nn.Module, field: str) -> bool:
  """Whether the layer's `field` (an initialiser) is its class's default."""
  default = {f.name: f.default for f in dataclasses.fields(type(module))}[field]
  return getattr(module, field) is default
