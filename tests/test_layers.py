"""Tests of the PyTorch-semantics conv layers against a direct definition."""

import itertools
import warnings

import flax.linen as nn
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


@pytest.mark.parametrize("lowering", layers.LOWERINGS)
@pytest.mark.parametrize("k,s,p,op,expected_size", CONV_TRANSPOSE_CASES, ids=CASE_IDS)
def test_conv_transpose_forward_and_grads_match_reference(k, s, p, op, expected_size,
                                                          lowering):
  del expected_size
  x, kernel = _inputs(k)
  fast = lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op, lowering=lowering)
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


def _subpixel_grid():
  """(k, s, p, op, (H, W), (in, out)) with a non-empty output: kernels below, equal to
  and above the stride, divisible by it or not, odd and even input sizes, a 1-row input,
  and paddings of a stride or more (which crop whole coarse rows)."""
  cases = [(3, 1, p, 0, (5, 4), (3, 2)) for p in (0, 1, 2)]
  combos = itertools.product((2, 3), (1, 2, 3, 4, 6), (0, 1, 3))
  for i, (s, k, p) in enumerate(combos):
    for op in sorted({0, s - 1}):
      size = [(5, 4), (1, 6), (6, 7)][i % 3]
      if min(layers.conv_transpose_output_size(n, k, s, p, op) for n in size) >= 1:
        cases.append((k, s, p, op, size, [(3, 2), (1, 5)][(i + op) % 2]))
  return cases


SUBPIXEL_GRID = _subpixel_grid()


def _linear_functional_grads(fn, x, kernel, seed=3):
  """Output and d<fn(x, K), C>/d(x, K) for a fixed random C of the output's shape."""
  y = fn(x, kernel)
  weights = jax.random.normal(jax.random.PRNGKey(seed), y.shape).astype(y.dtype)
  grads = jax.grad(lambda x_, k_: jnp.sum(fn(x_, k_) * weights), argnums=(0, 1))(x, kernel)
  return (y, *grads)


@pytest.mark.parametrize(
    "k,s,p,op,size,channels", SUBPIXEL_GRID,
    ids=[f"k{k}s{s}p{p}op{op}_{h}x{w}_{i}to{o}" for k, s, p, op, (h, w), (i, o)
         in SUBPIXEL_GRID])
def test_subpixel_lowering_matches_dilated_lowering(k, s, p, op, size, channels):
  x_key, kernel_key = jax.random.split(jax.random.PRNGKey(k * 100 + s * 10 + p))
  x = jax.random.normal(x_key, (2, *size, channels[0]))
  kernel = jax.random.normal(kernel_key, (k, k, *channels))
  got = _linear_functional_grads(
      lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op, lowering="subpixel"),
      x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op, lowering="dilated"),
      x, kernel)
  for g, w in zip(got, want):
    if np.any(w):
      assert_relative_close(g, w)
    else:  # A kernel narrower than the stride can leave only gap rows after cropping.
      np.testing.assert_array_equal(g, 0)


@pytest.mark.parametrize("kernel_shape,s,p,op", [((4, 2), 2, 1, 1), ((3, 6), 3, 2, 0)])
def test_subpixel_lowering_with_non_square_kernel_matches_reference(kernel_shape, s, p, op):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 5, 3))
  kernel = jax.random.normal(jax.random.PRNGKey(1), (*kernel_shape, 3, 4))
  got = _linear_functional_grads(
      lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op, lowering="subpixel"),
      x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: reference_conv_transpose(x_, k_, s, p, op), x, kernel)
  for g, w in zip(got, want):
    assert_relative_close(g, w)


@pytest.mark.parametrize("lowering", ["subpixel", "dilated"])
@pytest.mark.parametrize("k,s,p,op", [(4, 2, 1, 0), (3, 2, 1, 1), (6, 3, 2, 2)])
def test_conv_transpose_in_bfloat16_matches_float32_reference(k, s, p, op, lowering):
  # The reference sees the same bfloat16-rounded values in float32, so only the
  # bfloat16 arithmetic differs (8 mantissa bits: about 3 significant digits).
  x_key, kernel_key = jax.random.split(jax.random.PRNGKey(5))
  x = jax.random.normal(x_key, (2, 11, 10, 16)).astype(jnp.bfloat16)
  kernel = jax.random.normal(kernel_key, (k, k, 16, 8)).astype(jnp.bfloat16)
  got = _linear_functional_grads(
      lambda x_, k_: layers.conv_transpose(x_, k_, s, p, op, lowering=lowering), x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: reference_conv_transpose(x_, k_, s, p, op),
      x.astype(jnp.float32), kernel.astype(jnp.float32))
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    assert_relative_close(g.astype(jnp.float32), w, tol=2e-2)


def _equations(jaxpr):
  """The equations of `jaxpr` and, depth first, of the jaxprs inside them."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      inner = getattr(param, "jaxpr", param)  # A ClosedJaxpr holds a Jaxpr.
      if hasattr(inner, "eqns"):
        yield from _equations(inner)


def _forward_convs(x, kernel, **kwargs):
  # The forward pass sits inside the custom VJP's call.
  jaxpr = jax.make_jaxpr(lambda x_, k_: layers.conv_transpose(x_, k_, **kwargs))(x, kernel)
  return [eqn for eqn in _equations(jaxpr.jaxpr)
          if eqn.primitive.name == "conv_general_dilated"]


def test_subpixel_forward_is_one_plain_stride_1_conv():
  x = jnp.ones((2, 16, 16, 3))
  kernel = jnp.ones((4, 4, 3, 8))
  (conv,) = _forward_convs(x, kernel, stride=2, padding=1, lowering="subpixel")
  assert tuple(conv.params["lhs_dilation"]) == (1, 1)
  assert tuple(conv.params["window_strides"]) == (1, 1)
  # (k / s, k / s, in, s * s * out): every output phase from the same conv.
  assert conv.invars[1].aval.shape == (2, 2, 3, 32)


@pytest.mark.parametrize("x_shape,kernel_shape,stride,subpixel", [
    ((2, 16, 16, 3), (4, 4, 3, 8), 2, True),    # DCGAN's 16x16 -> 32x32 layer, narrower.
    ((2, 10, 12, 3), (6, 6, 3, 8), 3, True),
    ((2, 8, 8, 3), (4, 4, 3, 8), 2, False),     # Small map: the coarse rows' overhead.
    ((2, 32, 32, 3), (4, 4, 3, 3), 2, False),   # RGB output: dilated conv is fast.
    ((2, 16, 16, 3), (3, 3, 3, 8), 2, False),   # Kernel not divisible by the stride.
    ((2, 16, 16, 3), (4, 4, 3, 8), 1, False),   # Stride 1 needs no dilation anyway.
])
def test_auto_lowering_follows_the_measured_shape_rule(x_shape, kernel_shape, stride,
                                                        subpixel):
  convs = _forward_convs(jnp.ones(x_shape), jnp.ones(kernel_shape), stride=stride,
                         padding=1, lowering="auto")
  dilations = {tuple(eqn.params["lhs_dilation"]) for eqn in convs}
  assert dilations == ({(1, 1)} if subpixel or stride == 1 else {(stride, stride)})
  if stride > 1:
    assert (convs[0].invars[1].aval.shape[-1] == stride**2 * kernel_shape[-1]) == subpixel


@pytest.mark.parametrize("k,s,p,op,subpixel", [
    (4, 2, 1, 0, True), (6, 3, 2, 1, True), (4, 2, 1, 1, True), (3, 2, 1, 1, False)])
def test_conv_transpose_module_matches_pytorch(k, s, p, op, subpixel):
  torch = pytest.importorskip("torch")
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 11, 10, 3))
  module = layers.ConvTranspose(8, kernel_size=k, stride=s, padding=p, output_padding=op,
                                bias_init=jax.nn.initializers.normal(1.0))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # The checkerboard warning of k=3, s=2.
    variables = module.init(jax.random.PRNGKey(1), x)
    y = module.apply(variables, x)
  kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
  # Both lowerings are covered through the layer's default, 'auto'.
  assert layers._prefers_subpixel(x.shape, kernel.shape, s) == subpixel
  expected = torch.nn.functional.conv_transpose2d(
      torch.tensor(np.array(x).transpose(0, 3, 1, 2)),
      torch.tensor(np.array(kernel).transpose(2, 3, 0, 1)),  # (in, out, kh, kw)
      torch.tensor(np.array(bias)), stride=s, padding=p, output_padding=op)
  assert_relative_close(y, expected.numpy().transpose(0, 2, 3, 1))


def test_conv_transpose_rejects_unknown_lowering():
  x, kernel = _inputs(4)
  with pytest.raises(ValueError, match="unknown lowering 'fast'.*subpixel"):
    layers.conv_transpose(x, kernel, 2, 1, 0, lowering="fast")


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


def _plain_conv2d(x, kernel, stride, padding):
  return layers.conv2d(x, kernel, stride, padding, lowering="plain")


# (input (H, W), (in, out) channels, kernel, stride, padding): kernels covering the
# whole input (a dot), strided convs whose outputs reach the sub-pixel input gradient's
# 10x10 (odd and non-square sizes, rows left unread by the floor division, a kernel
# not divisible by the stride), and ordinary convs that keep the plain lowering.
CONV2D_CASES = [
    ((4, 4), (6, 5), 4, 1, 0),
    ((3, 5), (2, 4), (3, 5), 1, 0),
    ((20, 20), (8, 3), 4, 2, 1),
    ((21, 24), (9, 4), 4, 2, 1),
    ((23, 22), (8, 2), 4, 2, 2),
    ((33, 31), (8, 3), 6, 3, 2),
    ((21, 21), (3, 8), 3, 2, 1),
    ((9, 7), (3, 4), 3, 1, 1),
    ((8, 8), (3, 4), 4, 2, 1),
]
CONV2D_IDS = [f"{h}x{w}_{i}to{o}_k{k}s{s}p{p}" for (h, w), (i, o), k, s, p in CONV2D_CASES]


def _conv2d_inputs(size, channels, kernel_size, seed=0):
  x_key, kernel_key = jax.random.split(jax.random.PRNGKey(seed))
  kernel_hw = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
  return (jax.random.normal(x_key, (2, *size, channels[0])),
          jax.random.normal(kernel_key, (*kernel_hw, *channels)))


@pytest.mark.parametrize("size,channels,k,s,p", CONV2D_CASES, ids=CONV2D_IDS)
def test_conv2d_lowering_matches_plain_conv_in_forward_and_both_gradients(size, channels,
                                                                         k, s, p):
  x, kernel = _conv2d_inputs(size, channels, k)
  got = _linear_functional_grads(lambda x_, k_: layers.conv2d(x_, k_, s, p), x, kernel)
  want = _linear_functional_grads(lambda x_, k_: _plain_conv2d(x_, k_, s, p), x, kernel)
  for g, w in zip(got, want):
    assert_relative_close(g, w)


def _primitives(fn, *args):
  return [eqn.primitive.name for eqn in _equations(jax.make_jaxpr(fn)(*args).jaxpr)]


def test_conv2d_kernel_covering_the_whole_input_is_one_dot():
  x, kernel = _conv2d_inputs((4, 4), (6, 5), 4)
  loss = lambda x_, k_: jnp.sum(layers.conv2d(x_, k_) ** 2)
  names = _primitives(jax.grad(loss, argnums=(0, 1)), x, kernel)
  assert "conv_general_dilated" not in names
  assert names.count("dot_general") == 3  # Forward, dx and dK.


@pytest.mark.parametrize("size,channels,subpixel", [
    ((20, 20), (8, 3), True),     # A 10x10 output, 8 input channels to give back.
    ((64, 64), (32, 64), True),   # The CelebA VAE's second encoder conv.
    ((16, 16), (64, 128), False),  # 8x8 output: the dilated gradient is as fast.
    ((20, 20), (4, 8), False),    # Few channels: XLA's dilated conv is fast there.
])
def test_conv2d_input_gradient_lowering_follows_the_measured_shape_rule(size, channels,
                                                                        subpixel):
  x, kernel = _conv2d_inputs(size, channels, 4)
  y, vjp = jax.vjp(lambda x_: layers.conv2d(x_, kernel, 2, 1), x)
  convs = [eqn for eqn in _equations(jax.make_jaxpr(vjp)(jnp.ones_like(y)).jaxpr)
           if eqn.primitive.name == "conv_general_dilated"]
  dilations = {tuple(eqn.params["lhs_dilation"]) for eqn in convs}
  assert dilations == ({(1, 1)} if subpixel else {(2, 2)})


def test_conv_transpose_of_a_1x1_input_is_one_dot_equal_to_the_reference():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 1, 1, 5))
  kernel = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 5, 6))
  fast = lambda x_, k_: layers.conv_transpose(x_, k_, 2, 0, 0)
  assert "conv_general_dilated" not in _primitives(
      jax.grad(lambda x_, k_: jnp.sum(fast(x_, k_) ** 2), argnums=(0, 1)), x, kernel)
  got = _linear_functional_grads(fast, x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: reference_conv_transpose(x_, k_, 2, 0, 0), x, kernel)
  for g, w in zip(got, want):
    assert_relative_close(g, w)


@pytest.mark.parametrize("size,channels,k,s,p", [CONV2D_CASES[0], CONV2D_CASES[2]],
                         ids=[CONV2D_IDS[0], CONV2D_IDS[2]])
def test_conv2d_lowerings_in_bfloat16_match_float32(size, channels, k, s, p):
  x, kernel = (a.astype(jnp.bfloat16) for a in _conv2d_inputs(size, channels, k))
  got = _linear_functional_grads(lambda x_, k_: layers.conv2d(x_, k_, s, p), x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: _plain_conv2d(x_, k_, s, p),
      x.astype(jnp.float32), kernel.astype(jnp.float32))
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    assert_relative_close(g.astype(jnp.float32), w, tol=2e-2)


@pytest.mark.parametrize("size,channels,k,s,p", [CONV2D_CASES[0], CONV2D_CASES[3],
                                                 CONV2D_CASES[7]],
                         ids=[CONV2D_IDS[0], CONV2D_IDS[3], CONV2D_IDS[7]])
def test_conv2d_matches_pytorch(size, channels, k, s, p):
  torch = pytest.importorskip("torch")
  x, kernel = _conv2d_inputs(size, channels, k)
  y = layers.conv2d(x, kernel, s, p)
  expected = torch.nn.functional.conv2d(
      torch.tensor(np.array(x).transpose(0, 3, 1, 2)),
      torch.tensor(np.array(kernel).transpose(3, 2, 0, 1)),  # (out, in, kh, kw)
      stride=s, padding=p)
  assert_relative_close(y, expected.numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("conv_kwargs", [
    dict(features=8, kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1))),
    dict(features=5, kernel_size=(4, 4), padding="VALID"),
    # Beyond conv2d: each falls back to jax.lax.conv_general_dilated.
    dict(features=8, kernel_size=(3, 3), strides=(2, 1), padding=((1, 1), (1, 1))),
    dict(features=8, kernel_size=(3, 3), padding=((0, 1), (1, 1))),
    dict(features=8, kernel_size=(3, 3), kernel_dilation=(2, 2), padding="SAME"),
    dict(features=8, kernel_size=(3, 3), feature_group_count=2, padding="SAME"),
])
def test_flax_conv_with_jaxgen_lowering_equals_flax_default(conv_kwargs):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 20, 4))
  if conv_kwargs.get("padding") == "VALID":
    x = x[:, :4, :4]
  ours = nn.Conv(**conv_kwargs, conv_general_dilated=layers.conv_general_dilated)
  theirs = nn.Conv(**conv_kwargs)
  variables = theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
      jnp.shape, variables)
  got = _linear_functional_grads(lambda x_, v: ours.apply(v, x_), x, variables)
  want = _linear_functional_grads(lambda x_, v: theirs.apply(v, x_), x, variables)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_relative_close(g, w)


def test_conv2d_rejects_unknown_lowering():
  x, kernel = _conv2d_inputs((4, 4), (2, 3), 3)
  with pytest.raises(ValueError, match="unknown lowering 'fast'.*plain"):
    layers.conv2d(x, kernel, lowering="fast")


@pytest.mark.parametrize("factor,k,size,channels", [
    (2, 3, (5, 6), (4, 3)), (2, 1, (4, 4), (3, 5)), (3, 3, (4, 3), (2, 3)),
    (2, 5, (6, 5), (3, 2)), (3, 5, (3, 4), (2, 2))])
def test_upsampled_conv_equals_conv_of_the_upsampled_input(factor, k, size, channels):
  x, kernel = _conv2d_inputs(size, channels, k)
  p = (k - 1) // 2
  got = _linear_functional_grads(
      lambda x_, k_: layers.upsampled_conv(x_, k_, factor, p), x, kernel)
  want = _linear_functional_grads(
      lambda x_, k_: _plain_conv2d(layers.nearest_upsample(x_, factor), k_, 1, p),
      x, kernel)
  assert got[0].shape == (2, factor * size[0], factor * size[1], channels[1])
  for g, w in zip(got, want):
    assert_relative_close(g, w)


def test_upsampled_conv_does_fewer_multiplies_without_the_upsampled_map():
  # Four 2x2 phase convs of the 5x6 input: 16 of the 36 taps per output pixel, and
  # no array of the upsampled 10x12 input's size before the output.
  x, kernel = _conv2d_inputs((5, 6), (4, 3), 3)
  jaxpr = jax.make_jaxpr(lambda x_, k_: layers.upsampled_conv(x_, k_, 2, 1))(x, kernel)
  convs = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "conv_general_dilated"]
  assert [c.invars[1].aval.shape for c in convs] == [(2, 2, 4, 3)] * 4
  assert all(c.outvars[0].aval.shape == (2, 5, 6, 3) for c in convs)


def test_conv2d_module_with_upsample_matches_upsampling_first():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 5, 3))
  ours = layers.Conv2d(6, 3, 1, 1, upsample=2)
  reference = layers.Conv2d(6, 3, 1, 1)
  variables = reference.init(jax.random.PRNGKey(1), layers.nearest_upsample(x, 2))
  # The same parameters (the kernel's input channels do not depend on the upsampling).
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
      jnp.shape, variables)
  assert_relative_close(ours.apply(variables, x),
                        reference.apply(variables, layers.nearest_upsample(x, 2)))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, padding=0),
                                    dict(kernel_size=3, stride=2, padding=1)])
def test_conv2d_upsample_rejects_convs_that_do_not_keep_the_size(kwargs):
  with pytest.raises(ValueError, match="upsample|padding"):
    layers.Conv2d(4, upsample=2, **kwargs).init(jax.random.PRNGKey(0), jnp.ones((1, 4, 4, 2)))


@pytest.mark.parametrize("conv", [
    lambda x, k, materialize: layers.conv2d(x, k, 1, 1, materialize=materialize),
    lambda x, k, materialize: layers.conv2d(x, k, 2, 1, materialize=materialize),
    lambda x, k, materialize: layers.upsampled_conv(x, k, 2, 1, materialize=materialize),
    # A strided conv with the sub-pixel input gradient, and transposed convs (sub-pixel
    # and dilated forward).
    lambda x, k, materialize: layers.conv2d(jnp.tile(x, (1, 3, 3, 3))[..., :8],
                                            jnp.tile(k, (2, 2, 3, 3))[:4, :4, :8, :8], 2, 1,
                                            materialize=materialize),
    lambda x, k, materialize: layers.conv_transpose(
        jnp.tile(x, (1, 2, 2, 3))[..., :8], jnp.tile(k, (2, 2, 3, 3))[:4, :4, :8, :8], 2, 1,
        materialize=materialize),
    lambda x, k, materialize: layers.conv_transpose(x, k, 2, 1, 1, lowering="dilated",
                                                    materialize=materialize)],
    ids=["stride1", "stride2", "upsampled", "stride2_subpixel_grad", "transposed_subpixel",
         "transposed_dilated"])
def test_materialized_grad_operands_leave_output_and_gradients_unchanged(conv):
  # Not just close: the same ops on the same values.
  x, kernel = _conv2d_inputs((9, 8), (3, 4), 3)
  got = _linear_functional_grads(lambda x_, k_: conv(x_, k_, True), x, kernel)
  want = _linear_functional_grads(lambda x_, k_: conv(x_, k_, False), x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g, w)

  # ... and the backward pass does go through the materialized copies.
  def conds(materialize):
    grad = jax.grad(lambda k_: jnp.sum(conv(x, k_, materialize) ** 2))
    return str(jax.make_jaxpr(grad)(kernel)).count(" cond[")
  assert (conds(False), conds(True)) == (0, 2)


def test_materialized_grad_operands_survive_xla_as_conditionals():
  # A conv after BatchNorm-like work: the weight gradient must read the input and the
  # cotangent through two conditionals XLA keeps (it drops conditionals it can
  # resolve, which would let fusion recompute the producers in transposed order).
  x, kernel = _conv2d_inputs((8, 8), (4, 4), 3)

  def loss(x_, k_, materialize):
    h = jax.nn.relu(x_ * 1.5 - 0.2)
    return jnp.sum(jnp.tanh(layers.conv2d(h, k_, 1, 1, materialize=materialize)))

  def compiled_conditionals(materialize):
    step = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    return step.lower(x, kernel, materialize).compile().as_text().count("conditional(")

  assert compiled_conditionals(False) == 0
  assert compiled_conditionals(True) == 2
  for g, w in zip(jax.grad(loss, (0, 1))(x, kernel, True), jax.grad(loss, (0, 1))(x, kernel,
                                                                                False)):
    np.testing.assert_array_equal(g, w)


def test_materialized_operand_is_nan_only_when_its_first_element_is():
  x = jnp.arange(6.0).reshape(1, 2, 3, 1)
  np.testing.assert_array_equal(layers._materialized(x), x)
  poisoned = x.at[0, 0, 0, 0].set(jnp.nan)
  assert bool(jnp.all(jnp.isnan(layers._materialized(poisoned))))


def test_conv2d_module_with_materialize_equals_the_plain_module():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 5, 3))
  ours, reference = layers.Conv2d(4, 3, 1, 1, materialize=True), layers.Conv2d(4, 3, 1, 1)
  variables = reference.init(jax.random.PRNGKey(1), x)

  def grads(module):
    return jax.grad(lambda v: jnp.sum(module.apply(v, x) ** 2))(variables)

  np.testing.assert_array_equal(ours.apply(variables, x), reference.apply(variables, x))
  jax.tree.map(np.testing.assert_array_equal, grads(ours), grads(reference))


def _batch_norm_run(module, variables, x, train, mask=None):
  """Output, d<out, W>/d(params, x) for a fixed W, and the updated batch statistics."""
  weights = jax.random.normal(jax.random.PRNGKey(9), x.shape)

  def loss(params, x_):
    y, updates = module.apply({**variables, "params": params}, x_,
                              use_running_average=not train, mask=mask,
                              mutable=["batch_stats"])
    return jnp.sum(y.astype(jnp.float32) * weights), (y, updates["batch_stats"])

  (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
      variables["params"], x)
  return y, grads, stats


@pytest.mark.parametrize("shape,dtype,train,masked", [
    ((4, 5, 6, 7), jnp.float32, True, False),
    ((16, 9), jnp.float32, True, False),        # The autoencoder's code BatchNorm.
    ((4, 5, 6, 7), jnp.float32, False, False),  # Running averages: flax's own code.
    ((4, 5, 6, 7), jnp.float32, True, True),    # Masked statistics: flax's own code.
    ((4, 5, 6, 7), jnp.bfloat16, True, False),
])
def test_batch_norm_equals_flax_batch_norm(shape, dtype, train, masked):
  x = (3 * jax.random.normal(jax.random.PRNGKey(0), shape) + 1).astype(dtype)
  mask = (jnp.arange(shape[0]) % 3 > 0).reshape(-1, *([1] * (len(shape) - 1)))
  mask = mask if masked else None
  kwargs = dict(momentum=0.9, epsilon=1e-5, dtype=dtype)
  ours, theirs = layers.BatchNorm(**kwargs), nn.BatchNorm(**kwargs)
  variables = theirs.init(jax.random.PRNGKey(1), x, use_running_average=False)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x,
                                           use_running_average=False)) == jax.tree.map(
      jnp.shape, variables)
  # Statistics and parameters away from their initial values.
  variables = jax.tree.map(
      lambda v: v + jax.random.uniform(jax.random.PRNGKey(2), v.shape), variables)
  got = _batch_norm_run(ours, variables, x, train, mask)
  want = _batch_norm_run(theirs, variables, x, train, mask)
  assert got[0].dtype == want[0].dtype == dtype
  tol = 2e-2 if dtype == jnp.bfloat16 else 2e-5
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_relative_close(np.asarray(g, np.float32), np.asarray(w, np.float32), tol=tol)


def test_batch_norm_gradient_through_its_statistics():
  # The mean and var outputs of the custom VJP carry gradients too (d mean / dx = 1/n,
  # d var / dx = 2 (x - mean) / n): against autodiff of the plain formulas.
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 3, 4))
  scale, bias = jnp.array([1.5, 0.5, 2.0, 1.0]), jnp.array([0.1, -0.2, 0.3, 0.0])

  def plain(x_, s, b):
    mean = jnp.mean(x_, (0, 1))
    var = jnp.mean(x_ * x_, (0, 1)) - mean**2
    return (x_ - mean) * jax.lax.rsqrt(var + 1e-5) * s + b, mean, var

  def loss(fn):
    return lambda *args: sum(jnp.sum(jnp.sin(o) * (i + 1)) for i, o in enumerate(fn(*args)))

  got = jax.grad(loss(lambda *a: layers._batch_norm_train(*a, 1e-5)), (0, 1, 2))(
      x, scale, bias)
  want = jax.grad(loss(plain), (0, 1, 2))(x, scale, bias)
  for g, w in zip(got, want):
    assert_relative_close(g, w, tol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_takes_use_running_average_from_the_constructor(train):
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  ours = layers.BatchNorm(use_running_average=not train)
  theirs = nn.BatchNorm(use_running_average=not train)
  variables = theirs.init(jax.random.PRNGKey(1), x)
  got, _ = ours.apply(variables, x, mutable=["batch_stats"])
  want, _ = theirs.apply(variables, x, mutable=["batch_stats"])
  assert_relative_close(got, want)


@pytest.mark.parametrize("size,channels,k,s,p", CONV2D_CASES + [((9, 9), (3, 4), 3, 1, 0)],
                         ids=CONV2D_IDS + ["9x9_3to4_k3s1p0"])
def test_conv2d_im2col_matches_plain_conv_in_forward_and_both_gradients(size, channels,
                                                                       k, s, p):
  x, kernel = _conv2d_inputs(size, channels, k)
  im2col = lambda x_, k_: layers.conv2d(x_, k_, s, p, lowering="im2col")
  got = _linear_functional_grads(im2col, x, kernel)
  want = _linear_functional_grads(lambda x_, k_: _plain_conv2d(x_, k_, s, p), x, kernel)
  for g, w in zip(got, want):
    assert_relative_close(g, w)
  # No convolution left: forward and both gradients are dots.
  names = _primitives(jax.grad(lambda x_, k_: jnp.sum(im2col(x_, k_) ** 2), argnums=(0, 1)),
                      x, kernel)
  assert "conv_general_dilated" not in names
  assert names.count("dot_general") == 3


def test_conv_transpose_im2col_gradients_are_dots():
  x, kernel = _inputs(4)
  loss = lambda x_, k_: jnp.sum(layers.conv_transpose(x_, k_, 2, 1, 1, lowering="im2col") ** 2)
  names = _primitives(jax.grad(loss, argnums=(0, 1)), x, kernel)
  assert "conv_general_dilated" not in names
  assert names.count("dot_general") == 3


def test_lowering_im2col_modules_equal_the_auto_modules():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 6, 3))
  for ours, reference in [
      (layers.Conv2d(4, 4, 2, 1, lowering="im2col"), layers.Conv2d(4, 4, 2, 1)),
      (layers.ConvTranspose(5, 4, 2, 1, lowering="im2col"), layers.ConvTranspose(5, 4, 2, 1))]:
    variables = reference.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, variables)

    def grads(module, variables=variables):
      return jax.grad(lambda v: jnp.sum(jnp.sin(module.apply(v, x))))(variables)

    assert_relative_close(ours.apply(variables, x), reference.apply(variables, x))
    jax.tree.map(assert_relative_close, grads(ours), grads(reference))


@pytest.mark.parametrize("kwargs", [dict(lowering="dots"),
                                    dict(upsample=2, padding=1, lowering="im2col")])
def test_conv2d_module_rejects_bad_lowerings(kwargs):
  with pytest.raises(ValueError, match="lowering"):
    layers.Conv2d(4, 3, **kwargs).init(jax.random.PRNGKey(0), jnp.ones((1, 4, 4, 2)))
