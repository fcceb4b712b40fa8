"""Convolution layers with PyTorch's `Conv2d` / `ConvTranspose2d` semantics, NHWC.

`conv_transpose` is written as the linear transpose of a strided convolution with
a custom VJP. The math is that of `torch.nn.ConvTranspose2d`, but both gradients
become plain strided convolutions: XLA:CPU computes the weight gradient of a
stride-2 transposed conv (a conv with lhs dilation) about 25x slower than a normal
conv's, and this form made a conv-VAE train step about 3.8x faster on CPU.

Mixed precision: `compute_dtype` turns a `model.dtype` name into the dtype the layers
compute in (their `dtype=`); parameters are created in float32 (`param_dtype`) and cast
on use, so optimizer state and BatchNorm statistics stay float32 too.
"""

import functools
import numbers
from typing import Any, Callable, Sequence
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import config_lib

Array = jax.Array
Initializer = Callable[..., Array]

# Inputs NHWC; the strided conv's kernel is HWIO with I = the transposed conv's
# output channels and O = its input channels.
_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def compute_dtype(name: Any) -> jnp.dtype:
  """The dtype for a `model.dtype` value: 'float32' (default) or 'bfloat16'.

  Raises:
    ValueError: another value, naming `model.dtype` and the allowed values.
  """
  return jnp.dtype(config_lib.check_model_dtype(name))


def check_ints(model_name: str, field: str, values: Sequence[int], lowest: int = 1) -> None:
  """Raises a ValueError naming `model.<field>` unless every value is an int >= lowest."""
  if any(not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < lowest
         for v in values):
    kind = {0: "non-negative ints", 1: "positive ints"}.get(lowest, f"ints >= {lowest}")
    raise ValueError(f"{model_name}: `model.{field}` must hold {kind}, got {values!r}.")


def check_widths(model_name: str, field: str, widths: Sequence[int]) -> None:
  """Raises a ValueError unless `model.<field>` names at least one positive width."""
  if not widths:
    raise ValueError(f"{model_name}: `model.{field}` must name at least one conv width.")
  check_ints(model_name, field, tuple(widths))


def check_image_shape(model_name: str, image_shape: Sequence[int]) -> None:
  """Raises a ValueError unless `model.image_shape` is three positive ints (H, W, C)."""
  if len(image_shape) != 3:
    raise ValueError(f"{model_name}: `model.image_shape` must be (H, W, C), got "
                     f"{image_shape!r}.")
  check_ints(model_name, "image_shape", tuple(image_shape))


def check_output_params(model_name: str, output_params: int) -> None:
  """Raises a ValueError unless `model.output_params` is 1 (one decoder output per image
  channel: Bernoulli logits or Gaussian means) or 2 (discretized-logistic means and
  log-scales)."""
  if output_params not in (1, 2) or isinstance(output_params, bool):
    raise ValueError(f"{model_name}: `model.output_params` must be 1 (Bernoulli or Gaussian) "
                     f"or 2 (discretized logistic), got {output_params!r}.")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
  """Spatial output size of `torch.nn.Conv2d(kernel, stride, padding)`.

  Args:
    size: input height or width.
    kernel: kernel size.
    stride: stride.
    padding: zeros added on each side.

  Returns:
    floor((size + 2 * padding - kernel) / stride) + 1.
  """
  return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int,
                               padding: int, output_padding: int = 0) -> int:
  """Spatial output size of `torch.nn.ConvTranspose2d(kernel, stride, padding, output_padding)`.

  Args:
    size: input height or width.
    kernel: kernel size.
    stride: stride.
    padding: rows/columns cropped from each side of the full output.
    output_padding: rows/columns added at the bottom/right.

  Returns:
    (size - 1) * stride - 2 * padding + kernel + output_padding.
  """
  return (size - 1) * stride - 2 * padding + kernel + output_padding


def _strided_conv(u: Array, kernel: Array, stride: int, padding: int) -> Array:
  """`torch.nn.Conv2d(stride, padding)` on NHWC `u` with an HWIO kernel."""
  return jax.lax.conv_general_dilated(
      u, kernel, window_strides=(stride, stride),
      padding=((padding, padding), (padding, padding)),
      dimension_numbers=_DIMENSION_NUMBERS)


def _transposed_input_shape(x: Array, conv_kernel: Array, stride: int,
                            padding: int, output_padding: int) -> tuple[int, ...]:
  batch, height, width, _ = x.shape
  kernel_h, kernel_w, out_features, _ = conv_kernel.shape
  return (batch,
          conv_transpose_output_size(height, kernel_h, stride, padding, output_padding),
          conv_transpose_output_size(width, kernel_w, stride, padding, output_padding),
          out_features)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_transpose_via_conv(x: Array, conv_kernel: Array, stride: int,
                             padding: int, output_padding: int) -> Array:
  """Transposed conv as the linear transpose of `_strided_conv`.

  Args:
    x: (B, H, W, in) input.
    conv_kernel: (k, k, out, in) kernel of the strided conv that maps the output
      back to the input's shape.
    stride: stride.
    padding: PyTorch-style padding.
    output_padding: extra rows/columns; the strided conv ignores them, so
      they only enlarge the shape of the conv's input (the result).

  Returns:
    (B, H', W', out) with H' = (H - 1) * stride - 2 * padding + k + output_padding.
  """
  result = jax.ShapeDtypeStruct(
      _transposed_input_shape(x, conv_kernel, stride, padding, output_padding), x.dtype)
  conv_transposed = jax.linear_transpose(
      lambda u: _strided_conv(u, conv_kernel, stride, padding), result)
  return conv_transposed(x)[0]


def _conv_transpose_fwd(x, conv_kernel, stride, padding, output_padding):
  y = _conv_transpose_via_conv(x, conv_kernel, stride, padding, output_padding)
  return y, (x, conv_kernel)


def _conv_transpose_bwd(stride, padding, output_padding, residuals, g):
  del output_padding  # Already in the cotangent's shape.
  x, conv_kernel = residuals
  # The forward pass is linear in x with adjoint `_strided_conv(., K)`, so dx is a
  # plain strided conv of the cotangent.
  dx = _strided_conv(g, conv_kernel, stride, padding)
  # <y, g> = <x, conv(g, K)>, so dK is the strided conv's own weight gradient at
  # input g and cotangent x: a fast, non-dilated wgrad on XLA:CPU.
  _, kernel_vjp = jax.vjp(lambda k: _strided_conv(g, k, stride, padding), conv_kernel)
  (dkernel,) = kernel_vjp(x)
  return dx, dkernel


_conv_transpose_via_conv.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def conv_transpose(x: Array, kernel: Array, stride: int = 1, padding: int = 0,
                   output_padding: int = 0) -> Array:
  """`torch.nn.ConvTranspose2d(k, stride, padding, output_padding)` on NHWC input, no bias.

  Output size per spatial dim: (H - 1) * stride - 2 * padding + k + output_padding.
  Gradients are plain strided convolutions (see the module docstring).

  Args:
    x: (B, H, W, in) input.
    kernel: (kh, kw, in, out) kernel. A PyTorch weight of shape (in, out, kh, kw)
      maps to it by `weight.transpose(2, 3, 0, 1)`; no spatial flip is needed.
    stride: stride, >= 1 (not differentiable).
    padding: rows/columns cropped from each side, >= 0 (not differentiable).
    output_padding: rows/columns added at the bottom/right, 0 <= output_padding
      < stride as in PyTorch (not differentiable).

  Returns:
    (B, H', W', out) array.

  Raises:
    ValueError: bad ranks, channel mismatch, or out-of-range stride/padding.
  """
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(
        f"conv_transpose expects x (B, H, W, C) and kernel (kh, kw, in, out), got "
        f"x.shape={x.shape}, kernel.shape={kernel.shape}.")
  if kernel.shape[2] != x.shape[-1]:
    raise ValueError(
        f"conv_transpose: kernel has {kernel.shape[2]} input channels "
        f"(kernel.shape={kernel.shape}) but x has {x.shape[-1]} (x.shape={x.shape}).")
  for name, value in (("stride", stride), ("padding", padding),
                      ("output_padding", output_padding)):
    if not isinstance(value, int) or isinstance(value, bool):
      raise ValueError(f"conv_transpose: {name} must be an int, got {value!r}.")
  if stride < 1:
    raise ValueError(f"conv_transpose: stride must be >= 1, got {stride}.")
  if padding < 0 or output_padding < 0:
    raise ValueError(
        f"conv_transpose: padding and output_padding must be >= 0, got "
        f"padding={padding}, output_padding={output_padding}.")
  if output_padding >= stride:
    raise ValueError(
        f"conv_transpose: output_padding ({output_padding}) must be smaller than "
        f"stride ({stride}), as in torch.nn.ConvTranspose2d.")
  out_size = tuple(
      conv_transpose_output_size(size, k, stride, padding, output_padding)
      for size, k in zip(x.shape[1:3], kernel.shape[:2]))
  if min(out_size) < 1:
    raise ValueError(
        f"conv_transpose: input {x.shape[1:3]} with kernel {kernel.shape[:2]}, "
        f"stride {stride}, padding {padding}, output_padding {output_padding} "
        f"gives an empty output {out_size}; reduce padding.")
  dtype = jnp.result_type(x, kernel)
  conv_kernel = jnp.swapaxes(kernel.astype(dtype), 2, 3)
  return _conv_transpose_via_conv(x.astype(dtype), conv_kernel, stride, padding,
                                  output_padding)


class ConvTranspose(nn.Module):
  """`torch.nn.ConvTranspose2d` for NHWC inputs (square kernel, same stride both ways).

  Parameters: `kernel` (k, k, in, out) and `bias` (out,): in * out * k * k + out,
  the same count as PyTorch.

  Attributes:
    features: output channels.
    kernel_size: kernel height and width.
    stride: stride.
    padding: PyTorch-style padding (cropped from each side).
    output_padding: extra rows/columns at the bottom/right, < stride.
    use_bias: whether to add a bias.
    kernel_init: initializer of the (k, k, in, out) kernel; the default is
      LeCun normal with fan-in in * k * k, as flax's `nn.ConvTranspose`.
    bias_init: initializer of the bias.
    dtype: the computation's dtype (None: from the input and the float32 parameters,
      as flax layers do); the parameters stay float32 and are cast to it.
  """
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies the transposed conv to (B, H, W, in) `x`; returns (B, H', W', features)."""
    if self.stride >= 1 and self.kernel_size % self.stride != 0:
      # Uneven overlap of the kernel's footprints gives a periodic pattern
      # (Odena et al., 2016, "Deconvolution and Checkerboard Artifacts").
      warnings.warn(
          f"ConvTranspose kernel_size={self.kernel_size} is not divisible by "
          f"stride={self.stride}: checkerboard artifacts are likely.",
          UserWarning)
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv_transpose(x, kernel, self.stride, self.padding, self.output_padding)
    return y if bias is None else y + bias


def Conv2d(features: int, kernel_size: int, stride: int = 1, padding: int = 0,
           **conv_kwargs: Any) -> nn.Conv:
  """`torch.nn.Conv2d(kernel_size, stride, padding)` as a flax `nn.Conv` on NHWC.

  Args:
    features: output channels.
    kernel_size: kernel height and width.
    stride: stride.
    padding: zeros added on each side (explicit, symmetric, unlike "SAME").
    **conv_kwargs: further `nn.Conv` fields (use_bias, kernel_init, name, ...).

  Returns:
    An `nn.Conv` with output size `conv_output_size(size, kernel_size, stride, padding)`.
  """
  return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)), **conv_kwargs)
