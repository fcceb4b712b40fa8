"""Face / CIFAR models, their objective paths (MSE, logistic, BatchNorm, deterministic AE),
the new losses, and the latent edits."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from jaxgen import losses
from jaxgen import models
from jaxgen import objectives
from jaxgen import train
from jaxgen.evaluation import latent_edits

# k3 s2 transposed convs warn about checkerboard artifacts on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")

TINY = {
    "conv5_vae": dict(initial_filters=2),
    "conv5_vae_strided": dict(image_shape=(27, 19, 1), initial_filters=2, stride=2,
                              num_layers=4),
    "celeba_conv_vae": dict(channels=(4, 4, 4, 4), latent_dim=6),
    "celeba_conv_vae_no_bn": dict(channels=(4, 4, 4, 4), latent_dim=6, batch_norm=False),
    "resnet_vae": dict(width=4, stage_multipliers=(1, 2), blocks_per_stage=1, latent_dim=5),
    "resnet_vae_logistic": dict(width=4, stage_multipliers=(1, 2), blocks_per_stage=1,
                                latent_dim=5, output_params=2),
    "fc_autoencoder": dict(hidden_dim=16, latent_dim=8),
    "mlp_vae": dict(image_shape=(4, 4, 1), hidden_sizes=(8,), latent_dim=3),
}


def _name(case):
  return case.replace("_strided", "").replace("_no_bn", "").replace("_logistic", "")


def _model(case):
  return models.get_model(_name(case), **TINY[case])


@pytest.mark.parametrize("case", sorted(TINY))
def test_output_shapes(case):
  model = _model(case)
  x = jnp.zeros((2, *model.image_shape))
  key = jax.random.PRNGKey(0)
  (out, aux), variables = jax.eval_shape(
      lambda: model.init_with_output(key, x, key, train=False))
  channels = model.image_shape[-1] * getattr(model, "output_params", 1)
  assert out.shape == (2, *model.image_shape[:2], channels)
  if getattr(model, "variational", True):
    assert {k: v.shape for k, v in aux.items()} == {k: (2, model.latent_dim)
                                                   for k in ("mu", "logvar", "z")}
  else:
    assert aux["z"].shape == (2, model.latent_dim)
  has_bn = "batch_stats" in variables
  assert has_bn == (case not in ("conv5_vae", "conv5_vae_strided", "celeba_conv_vae_no_bn",
                                 "mlp_vae"))


def test_full_size_architectures():
  key = jax.random.PRNGKey(0)
  frey = models.get_model("conv5_vae")  # Frey defaults: 28x20x1, latent 2.
  variables = jax.eval_shape(frey.init, key, jnp.zeros((1, 28, 20, 1)), key)
  kernels = {k: v["kernel"].shape for k, v in variables["params"].items() if "convs" in k}
  assert [kernels[f"encoder_convs_{i}"][-1] for i in range(5)] == [16, 32, 64, 128, 256]
  assert [kernels[f"decoder_convs_{i}"][-1] for i in range(5)] == [128, 64, 32, 16, 1]
  assert frey._encoder_sizes() == [(28, 20), (28, 20), (14, 10), (14, 10), (7, 5), (7, 5)]
  celeba = models.get_model("celeba_conv_vae")
  variables = jax.eval_shape(celeba.init, key, jnp.zeros((1, 64, 64, 3)), key)
  params = variables["params"]
  assert [params[f"encoder_convs_{i}"]["kernel"].shape for i in range(4)] == [
      (4, 4, 3, 32), (4, 4, 32, 64), (4, 4, 64, 128), (4, 4, 128, 256)]
  assert params["mu_head"]["kernel"].shape == (4, 4, 256, 128)  # 4x4 conv to mu.
  ae = models.get_model("fc_autoencoder")
  variables = jax.eval_shape(ae.init, key, jnp.zeros((1, 64, 64, 3)), key)
  dense = {k: v["kernel"].shape for k, v in variables["params"].items() if "kernel" in v}
  assert dense == {"encoder_hidden": (12288, 4096), "encoder_code": (4096, 2048),
                   "decoder_hidden": (2048, 4096), "decoder_output": (4096, 12288)}
  resnet = models.get_model("resnet_vae")
  variables = jax.eval_shape(resnet.init, key, jnp.zeros((1, 32, 32, 3)), key)
  convs = [k for k in jax.tree_util.tree_leaves_with_path(variables["params"])
           if "encoder" in jax.tree_util.keystr(k[0]) and k[1].ndim == 4
           and k[1].shape[0] == 3]
  assert len(convs) == 16  # ResNet-18: 8 blocks of two 3x3 convs (plus the stem).


@pytest.mark.parametrize("name,fields,pattern", [
    ("celeba_conv_vae", dict(image_shape=(28, 28, 1)), r"model\.image_shape.*64x64"),
    ("conv5_vae", dict(stride=(1, 2)), r"model\.stride"),
    ("conv5_vae", dict(image_shape=(4, 4, 1), stride=2, padding=0), r"model\.image_shape"),
    ("resnet_vae", dict(image_shape=(30, 30, 3)), r"model\.image_shape"),
    ("resnet_vae", dict(output_params=3), r"model\.output_params"),
    ("fc_autoencoder", dict(hidden_dim=0), r"model\.hidden_dim"),
])
def test_bad_architectures_fail_clearly(name, fields, pattern):
  with pytest.raises(ValueError, match=pattern):
    models.get_model(name, **fields)


@pytest.mark.parametrize("name", ["celeba_conv_vae", "fc_autoencoder"])
def test_face_model_given_28x28_images_fails_clearly(name):
  model = _model(name)
  key = jax.random.PRNGKey(0)
  variables = jax.eval_shape(model.init, key, jnp.zeros((1, 64, 64, 3)), key)
  with pytest.raises(ValueError, match=r"expects images of shape \(64, 64, 3\).*"
                                       r"model\.image_shape.*got \(28, 28, 1\)"):
    model.apply(variables, jnp.zeros((2, 28, 28, 1)), key, train=False)


# --- Objectives -------------------------------------------------------------------


def _objective(case, likelihood, preprocessing, beta=1.0):
  config = ml_collections.ConfigDict(dict(
      seed=0,
      data=dict(name="fake", preprocessing=preprocessing, batch_size=4),
      model=dict(name=_name(case), **TINY[case]),
      objective=dict(name="autoencoding", likelihood=likelihood, beta=beta),
      optimizer=dict(name="adam", learning_rate=1e-3),
  ))
  return objectives.get_objective(config), _model(case)


def _batch(model, preprocessing, seed=0, size=4):
  rng = np.random.default_rng(seed)
  levels = rng.integers(0, 256, (size, *model.image_shape)) / 255.0
  images = 2 * levels - 1 if preprocessing == "symmetric" else levels
  return {"image": jnp.asarray(images, jnp.float32)}


STEP_CASES = [
    ("conv5_vae", "bernoulli", "unit"),
    ("celeba_conv_vae", "mse", "symmetric"),
    ("resnet_vae_logistic", "discretized_logistic", "symmetric"),
    ("fc_autoencoder", "mse", "symmetric"),
]


@pytest.mark.parametrize("case,likelihood,preprocessing", STEP_CASES)
def test_one_training_step_traces_once(case, likelihood, preprocessing):
  objective, model = _objective(case, likelihood, preprocessing, beta=3e-6)
  mesh = train.make_mesh()
  batch = _batch(model, preprocessing)
  state = train.init_state(objective, jax.random.PRNGKey(0), batch, mesh)
  before = jax.device_get(state.model_state)
  chex.clear_trace_counter()
  step = train.jit_train_step(chex.assert_max_traces(objective.train_step, n=1), mesh)
  for i in range(3):
    state, metrics = step(state, train.shard_batch(_batch(model, preprocessing, i), mesh),
                          jax.random.PRNGKey(1))
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))
  if before is not None:  # BatchNorm running averages move in training steps.
    changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), before,
                                     jax.device_get(state.model_state))
    assert any(jax.tree_util.tree_leaves(changed))
  # A Bernoulli of grey levels ('unit') is a cross-entropy: no bits/dim.
  expected = {"bernoulli": {"elbo_nats", "nll_nats", "kl_nats"},
              "discretized_logistic": {"elbo_nats", "nll_nats", "kl_nats", "bits_per_dim"},
              "mse": {"mse", "kl_nats"} if objective.variational else {"mse"}}[likelihood]
  assert set(metrics) == expected | {"loss", "grad_norm"}


def test_mse_loss_is_pixel_mean_mse_plus_lambda_kl():
  objective, model = _objective("mlp_vae", "mse", "symmetric", beta=3e-6)
  batch = _batch(model, "symmetric")
  state = jax.jit(objective.init_state)(jax.random.PRNGKey(0), batch)
  rng = jax.random.PRNGKey(5)
  out, aux = jax.jit(model.apply)({"params": state.params["model"]}, batch["image"], rng)
  mse = np.mean((np.asarray(out) - np.asarray(batch["image"])) ** 2, axis=(1, 2, 3))
  mu, logvar = np.asarray(aux["mu"]), np.asarray(aux["logvar"])
  kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1)
  metrics = jax.jit(objective.eval_step)(state, batch, rng)
  np.testing.assert_allclose(metrics["mse"], mse, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"], mse + 3e-6 * kl, rtol=1e-5)
  assert "elbo_nats" not in metrics  # An MSE is not a likelihood: no ELBO is claimed.


def test_autoencoder_has_no_kl_and_beta_is_unused():
  objective, model = _objective("fc_autoencoder", "mse", "symmetric", beta=0.0)
  heavy, _ = _objective("fc_autoencoder", "mse", "symmetric", beta=10.0)
  batch = _batch(model, "symmetric")
  state = objective.init_state(jax.random.PRNGKey(0), batch)
  metrics = objective.eval_step(state, batch, jax.random.PRNGKey(1))
  assert set(metrics) == {"mse", "loss"}
  np.testing.assert_allclose(metrics["loss"], metrics["mse"])
  np.testing.assert_allclose(heavy.eval_step(state, batch, jax.random.PRNGKey(1))["loss"],
                             metrics["loss"])
  samples = objective.sample(state, jax.random.PRNGKey(2), 3)
  assert samples.shape == (3, 64, 64, 3) and 0.0 <= samples.min() and samples.max() <= 1.0


def test_eval_uses_batchnorm_running_averages():
  """Per-example eval values do not depend on the other images of the batch."""
  objective, model = _objective("fc_autoencoder", "mse", "symmetric")
  batch = _batch(model, "symmetric")
  state = objective.init_state(jax.random.PRNGKey(0), batch)
  state, _ = jax.jit(objective.train_step)(state, batch, jax.random.PRNGKey(1))
  together = objective.eval_step(state, batch, jax.random.PRNGKey(2))["mse"]
  alone = objective.eval_step(state, {"image": batch["image"][:1]}, jax.random.PRNGKey(2))["mse"]
  np.testing.assert_allclose(alone[0], together[0], rtol=1e-5)


@pytest.mark.parametrize("case,likelihood,preprocessing,pattern", [
    ("resnet_vae", "discretized_logistic", "symmetric", r"model\.output_params=2"),
    ("celeba_conv_vae", "mse", "unit", r"data\.preprocessing='symmetric'"),
    ("fc_autoencoder", "bernoulli", "unit", r"data\.preprocessing='symmetric'"),
])
def test_mismatched_likelihood_and_model_fail_clearly(case, likelihood, preprocessing, pattern):
  with pytest.raises(ValueError, match=pattern):
    objective, model = _objective(case, likelihood, preprocessing)
    jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), _batch(model, preprocessing))


# --- Losses -----------------------------------------------------------------------


def test_discretized_logistic_sums_to_one_and_matches_scipy():
  levels = np.arange(256) / 255.0 * 2 - 1  # The 8-bit grid on [-1, 1].
  mean, log_scale = 0.13, math.log(0.2)
  targets = jnp.asarray(levels, jnp.float32)[:, None]
  nll = losses.discretized_logistic_nll(jnp.full_like(targets, mean),
                                        jnp.full_like(targets, log_scale), targets)
  probs = np.exp(-np.asarray(nll, np.float64))
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-4)
  dist = stats.logistic(loc=mean, scale=0.2)
  half = 1 / 255.0
  expected = dist.cdf(levels + half) - dist.cdf(levels - half)
  expected[0], expected[-1] = dist.cdf(levels[0] + half), dist.sf(levels[-1] - half)
  np.testing.assert_allclose(probs, expected, rtol=1e-3)


def test_discretized_logistic_is_finite_for_tiny_scales_and_unit_data():
  targets = jnp.asarray([[0.0, 128 / 255.0, 1.0]])  # On the 8-bit grid of [0, 1].
  far = losses.discretized_logistic_nll(targets + 0.3, jnp.full_like(targets, -20.0),
                                        targets, data_low=0.0, data_range=1.0)
  assert np.all(np.isfinite(far)) and float(far[0]) > 100  # Midpoint rule, not log(0).
  # Centred on the targets at the smallest scale e^-7: the bins' masses in closed form.
  nll = losses.discretized_logistic_nll(targets, jnp.full_like(targets, -7.0), targets,
                                        data_low=0.0, data_range=1.0)
  u = (1 / 510) * math.exp(7.0)  # Half a bin in units of the scale.
  sigmoid = lambda t: 1 / (1 + math.exp(-t))
  expected = -2 * math.log(sigmoid(u)) - math.log(sigmoid(u) - sigmoid(-u))
  np.testing.assert_allclose(nll, [expected], rtol=1e-4)


def test_pixel_mean_squared_error():
  a, b = np.zeros((2, 4, 4, 3)), np.ones((2, 4, 4, 3))
  b[1] *= 3
  np.testing.assert_allclose(losses.pixel_mean_squared_error(jnp.asarray(a), jnp.asarray(b)),
                             [1.0, 9.0])


# --- Latent edits -----------------------------------------------------------------


def test_noise_mixing_identities_on_a_trained_autoencoder():
  objective, model = _objective("fc_autoencoder", "mse", "symmetric")
  batch = _batch(model, "symmetric", size=5)
  state = objective.init_state(jax.random.PRNGKey(0), batch)
  state, _ = jax.jit(objective.train_step)(state, batch, jax.random.PRNGKey(1))
  codes = objective.latent_code(state, batch["image"])
  mean, std = latent_edits.code_statistics(np.asarray(codes))
  noise = latent_edits.shared_noise(jax.random.PRNGKey(3), mean, std)
  plain = objective.reconstruct(state, batch, None)
  at_zero = objective.decode(state, latent_edits.mix_with_noise(codes, noise, 0.0))
  np.testing.assert_array_equal(at_zero, plain)
  at_one = objective.decode(state, latent_edits.mix_with_noise(codes, noise, 1.0))
  other = objective.latent_code(state, -batch["image"])  # Different inputs, same output.
  at_one_other = objective.decode(state, latent_edits.mix_with_noise(other, noise, 1.0))
  np.testing.assert_allclose(at_one, np.broadcast_to(at_one[:1], at_one.shape), atol=1e-6)
  np.testing.assert_allclose(at_one, at_one_other, atol=1e-6)
  half = latent_edits.mix_with_noise(codes, noise, 0.5)
  np.testing.assert_allclose(half, 0.5 * codes + 0.5 * noise[None], rtol=1e-6)
  grid, titles = latent_edits.edit_grid(objective, state, np.asarray(batch["image"]),
                                        jax.random.PRNGKey(3), mean, std, k=2.0)
  assert titles[:5] == ["original", "reconstruction", "noise a=0.2", "noise a=0.5",
                        "noise a=0.8"]
  assert len(titles) == 9 and grid.shape == (5 * 9, 64, 64, 3)
  assert grid.min() >= 0.0 and grid.max() <= 1.0


def test_element_edits_and_noise_shape_check():
  codes = jnp.arange(12.0).reshape(3, 4)
  edited = latent_edits.set_elements(codes, [1, 3], [-2.0, 5.0])
  np.testing.assert_array_equal(edited[:, 1], -2.0)
  np.testing.assert_array_equal(edited[:, 3], 5.0)
  np.testing.assert_array_equal(edited[:, [0, 2]], codes[:, [0, 2]])
  assert latent_edits.most_variable_elements(np.array([0.1, 3.0, 0.0, 2.0])) == (1, 3)
  with pytest.raises(ValueError, match="one noise vector"):
    latent_edits.mix_with_noise(codes, jnp.zeros((3, 4)), 0.5)


def test_resnet_upsampling_block_equals_upsampling_its_input_first():
  # The decoder block computes its first conv by `upsampled_conv` and upsamples the
  # shortcut after its 1x1 conv and BatchNorm; the plain order (upsample x, then both
  # branches) must give the same output, gradients and batch statistics.
  from jaxgen.models import layers
  from jaxgen.models import resnet_vae

  class UpsampleFirst(resnet_vae.ResidualBlock):
    @nn.compact
    def __call__(self, x, *, train):
      return resnet_vae.ResidualBlock(self.features, dtype=self.dtype, name="block")(
          layers.nearest_upsample(x, 2), train=train)

  block = resnet_vae.ResidualBlock(4, upsample=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 6, 8))
  variables = block.init(jax.random.PRNGKey(1), x, train=True)
  reference = UpsampleFirst(4)
  ref_variables = {"params": {"block": variables["params"]},
                   "batch_stats": {"block": variables["batch_stats"]}}

  def run(module, v):
    def loss(params):
      y, updates = module.apply({**v, "params": params}, x, train=True,
                                mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y)), (y, updates["batch_stats"])
    (_, (y, stats)), grads = jax.value_and_grad(loss, has_aux=True)(v["params"])
    return y, grads, stats

  y, grads, stats = run(block, variables)
  y_ref, grads_ref, stats_ref = run(reference, ref_variables)
  assert y.shape == (3, 10, 12, 4)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref["block"])):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  for got, want in zip(jax.tree.leaves(stats), jax.tree.leaves(stats_ref["block"])):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
