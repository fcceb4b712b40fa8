"""Tests of the PyTorch-semantics conv layers against a direct definition."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import layers

# (kernel, stride, padding, output_padding, expected (H', W') for a 5x4 input),
# the expected sizes worked out by hand from torch.nn.ConvTranspose2d's formula.
CONV_TRANSPOSE_CASES = [
    (4, 2, 1, 0, (10, 8)),
    (5, 2, 2, 1, (10, 8)),
    (3, 2, 1, 1, (10, 8)),
    (3, 1, 1, 0, (5, 4)),
    (4, 1, 0, 0, (8, 7)),
    (2, 2, 0, 0, (10, 8)),
    (4, 2, 0, 1, (13, 11)),
]
CASE_IDS = [f"k{k}s{s}p{p}op{op}" for k, s, p, op, _ in CONV_TRANSPOSE_CASES]
BATCH, HEIGHT, WIDTH, IN_FEATURES, OUT_FEATURES = 2, 5, 4, 3, 2


def reference_conv_transpose(x, kernel, stride, padding, output_padding):
  """PyTorch's definition written plainly: out[i * s - p + a] += x[i] @ kernel[a]."""
  batch, height, width, _ = x.shape
  kernel_h, kernel_w, _, out_features = kernel.shape
  # Scatter into the uncropped output, then crop `padding` from each side; the
  # extra `output_padding` rows/columns at the bottom/right stay in.
  full = jnp.zeros((batch, (height - 1) * stride + kernel_h + output_padding,
                    (width - 1) * stride + kernel_w + output_padding, out_features))
  for a in range(kernel_h):
    for b in range(kernel_w):
      contribution = jnp.einsum("nhwi,io->nhwo", x, kernel[a, b],
                                precision=jax.lax.Precision.HIGHEST)
      full = full.at[:, a:a + (height - 1) * stride + 1:stride,
                     b:b + (width - 1) * stride + 1:stride, :].add(contribution)
  out_h = (height - 1) * stride - 2 * padding + kernel_h + output_padding
  out_w = (width - 1) * stride - 2 * padding + kernel_w + output_padding
  return full[:, padding:padding + out_h, padding:padding + out_w, :]


def _inputs(kernel_size, seed=0):
  x_key, kernel_key = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.normal(x_key, (BATCH, HEIGHT, WIDTH, IN_FEATURES))
  kernel = jax.random.normal(kernel_key, (kernel_size, kernel_size, IN_FEATURES, OUT_FEATURES))
  return x, kernel


def assert_relative_close(actual, expected, tol=1e-5):
  """max |actual - expected| <= tol * max |expected| (robust to near-zero entries)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  scale = np.max(np.abs(expected))
  assert scale > 0
  error = np.max(np.abs(actual - expected))
  assert error <= tol * scale, f"relative error {error / scale:.2e} > {tol:.0e}"


@pytest.mark.parametrize("k,s,p,op,expected_size", CONV_TRANSPOSE_CASES, ids=CASE_IDS)
def test_conv_transpose_output_size_matches_pytorch_formula(k, s, p, op, expected_size):
  assert (layers.conv_transpose_output_size(HEIGHT, k, s, p, op),
          layers.conv_transpose_output_size(WIDTH, k, s, p, op)) == expected_size
  x, kernel = _inputs(k)
  y = layers.conv_transpose(x, kernel, s, p, op)
  assert y.shape == (BATCH, *expected_size, OUT_FEATURES)


@pytest.mark.parametrize("k,s,p,op,expected_size", CONV_TRANSPOSE_CASES, ids=CASE_IDS)
def test_conv_transpose_forward_and_grads_match_reference(k, s, p, op, expected_size):
  del expected_size
  x, kernel = _inputs(k)
  fast = lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op)
  ref = lambda x_, k_: reference_conv_transpose(x_, k_, s, p, op)
  y, fast_vjp = jax.vjp(fast, x, kernel)
  y_ref, ref_vjp = jax.vjp(ref, x, kernel)
  assert_relative_close(y, y_ref)
  cotangent = jax.random.normal(jax.random.PRNGKey(7), y_ref.shape)
  dx, dkernel = fast_vjp(cotangent)
  dx_ref, dkernel_ref = ref_vjp(cotangent)
  assert_relative_close(dx, dx_ref)
  assert_relative_close(dkernel, dkernel_ref)


def test_conv_transpose_under_jit_matches_reference():
  x, kernel = _inputs(4)
  loss = lambda f: (lambda x_, k_: jnp.sum(jnp.sin(f(x_, k_, 2, 1, 0))))
  fast = jax.jit(jax.grad(loss(layers.conv_transpose), argnums=(0, 1)))
  ref = jax.grad(loss(reference_conv_transpose), argnums=(0, 1))
  for got, want in zip(fast(x, kernel), ref(x, kernel)):
    assert_relative_close(got, want)


def test_conv_transpose_backward_has_no_dilated_input_conv():
  # The point of the custom VJP: both gradients are ordinary strided convs, not
  # the input-dilated convs XLA:CPU runs slowly.
  x, kernel = _inputs(4)
  y, vjp = jax.vjp(lambda x_, k_: layers.conv_transpose(x_, k_, 2, 1, 0), x, kernel)
  backward = jax.make_jaxpr(vjp)(jnp.ones_like(y))
  convs = [eqn for eqn in backward.eqns if eqn.primitive.name == "conv_general_dilated"]
  # dx, dK (and the strided conv's unused primal output, dropped under jit).
  assert len(convs) >= 2
  assert all(tuple(eqn.params["lhs_dilation"]) == (1, 1) for eqn in convs)


@pytest.mark.parametrize("stride,output_padding", [(2, 2), (2, 3), (1, 1)])
def test_conv_transpose_rejects_output_padding_not_below_stride(stride, output_padding):
  x, kernel = _inputs(4)
  with pytest.raises(ValueError, match="output_padding"):
    layers.conv_transpose(x, kernel, stride, 1, output_padding)


@pytest.mark.parametrize("kwargs,message", [
    (dict(stride=0), "stride"),
    (dict(stride=2, padding=-1), "padding"),
    (dict(stride=1, padding=5), "empty output"),
])
def test_conv_transpose_rejects_bad_arguments(kwargs, message):
  x, kernel = _inputs(3)
  with pytest.raises(ValueError, match=message):
    layers.conv_transpose(x, kernel, **kwargs)


def test_conv_transpose_rejects_channel_mismatch():
  x, kernel = _inputs(3)
  with pytest.raises(ValueError, match="input channels"):
    layers.conv_transpose(x[..., :2], kernel, 2, 1, 0)


def test_conv_transpose_module_matches_function_and_pytorch_param_count():
  x, _ = _inputs(4)
  module = layers.ConvTranspose(OUT_FEATURES, kernel_size=4, stride=2, padding=1,
                                bias_init=jax.nn.initializers.normal(1.0))
  variables = module.init(jax.random.PRNGKey(1), x)
  params = variables["params"]
  assert params["kernel"].shape == (4, 4, IN_FEATURES, OUT_FEATURES)
  # torch.nn.ConvTranspose2d: in * out * k * k + out.
  assert sum(v.size for v in params.values()) == IN_FEATURES * OUT_FEATURES * 16 + OUT_FEATURES
  expected = reference_conv_transpose(x, params["kernel"], 2, 1, 0) + params["bias"]
  assert_relative_close(module.apply(variables, x), expected)


def test_conv_transpose_module_without_bias():
  x, _ = _inputs(2)
  module = layers.ConvTranspose(OUT_FEATURES, kernel_size=2, stride=2, use_bias=False)
  params = module.init(jax.random.PRNGKey(1), x)["params"]
  assert set(params) == {"kernel"}


def test_checkerboard_warning_fires_when_kernel_not_divisible_by_stride():
  x, _ = _inputs(5)
  module = layers.ConvTranspose(OUT_FEATURES, kernel_size=5, stride=2, padding=2,
                                output_padding=1)
  with pytest.warns(UserWarning, match=r"kernel_size=5.*stride=2.*checkerboard"):
    module.init(jax.random.PRNGKey(0), x)


def test_no_checkerboard_warning_when_kernel_divisible_by_stride():
  x, _ = _inputs(4)
  module = layers.ConvTranspose(OUT_FEATURES, kernel_size=4, stride=2, padding=1)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    module.init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize("size,k,s,p,expected", [
    (28, 4, 2, 1, 14), (14, 4, 2, 1, 7), (28, 3, 2, 1, 14), (7, 3, 1, 1, 7), (27, 4, 2, 1, 13),
])
def test_conv2d_matches_pytorch_output_size(size, k, s, p, expected):
  assert layers.conv_output_size(size, k, s, p) == expected
  conv = layers.Conv2d(5, k, s, p)
  x = jnp.ones((1, size, size, 2))
  y, _ = conv.init_with_output(jax.random.PRNGKey(0), x)
  assert y.shape == (1, expected, expected, 5)


def test_conv2d_pads_symmetrically_like_pytorch():
  # With a ones kernel and padding 1, each corner output sums a 2x2 block of
  # ones: the zero padding sits on both sides, not only at the bottom/right.
  conv = layers.Conv2d(1, 3, 2, 1, use_bias=False, kernel_init=jax.nn.initializers.ones)
  x = jnp.ones((1, 4, 4, 1))
  y, _ = conv.init_with_output(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(y[0, :, :, 0], [[4.0, 6.0], [6.0, 9.0]])
