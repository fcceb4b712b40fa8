"""Tests of the VAE contract, architectures and the model registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models

# Presets B and C warn about checkerboard artifacts on purpose; tested in test_layers.
pytestmark = pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")

BATCH = 2
MODEL_CASES = {
    "mlp_default": ("mlp_vae", {}),
    "mlp_small_rgb": ("mlp_vae", dict(image_shape=(8, 6, 3), hidden_sizes=(16,), latent_dim=3)),
    **{f"conv_{name}": ("conv_vae", preset)
       for name, preset in models.CONV_VAE_PRESETS.items()},
    # Small widths keep these fast: one conv, and three convs on a non-square RGB image.
    "conv_one_layer": ("conv_vae", dict(image_shape=(8, 8, 1), channels=(6,), latent_dim=4)),
    "conv_three_layers_rgb": ("conv_vae", dict(image_shape=(16, 8, 3), channels=(4, 6, 8),
                                               latent_dim=3)),
}


def _model(case):
  name, fields = MODEL_CASES[case]
  return models.get_model(name, **fields)


def _images(model):
  return jax.random.uniform(jax.random.PRNGKey(1), (BATCH, *model.image_shape))


def _init(model):
  key = jax.random.PRNGKey(0)
  x = _images(model)
  return model.init(key, x, key), x


@functools.cache
def _init_case(case):
  """Variables with init's shapes but deterministic non-random values.

  Compiling the random initializers for each new shape dominates test time on
  CPU; shape tests only need init's structure (one test runs the real init).
  """
  model = _model(case)
  x = _images(model)
  key = jax.random.PRNGKey(0)
  shapes = jax.eval_shape(model.init, key, x, key)
  fill = lambda s: 0.05 * jnp.sin(jnp.arange(s.size, dtype=s.dtype)).reshape(s.shape)
  return jax.tree_util.tree_map(fill, shapes), x


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_call_returns_logits_and_posterior(case):
  model = _model(case)
  variables, x = _init_case(case)
  rng = jax.random.PRNGKey(3)
  logits, aux = model.apply(variables, x, rng)
  assert logits.shape == x.shape
  assert logits.dtype == jnp.float32
  assert set(aux) == {"mu", "logvar", "z"}
  for value in aux.values():
    assert value.shape == (BATCH, model.latent_dim)
  # z is the reparameterized sample drawn with the explicit key.
  eps = jax.random.normal(rng, aux["mu"].shape)
  np.testing.assert_allclose(aux["z"], aux["mu"] + jnp.exp(0.5 * aux["logvar"]) * eps,
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_encode_and_decode_shapes(case):
  model = _model(case)
  variables, x = _init_case(case)
  mu, logvar = model.apply(variables, x, method=model.encode)
  assert mu.shape == logvar.shape == (BATCH, model.latent_dim)
  z = jnp.zeros((3, model.latent_dim))
  assert model.apply(variables, z, method=model.decode).shape == (3, *model.image_shape)


def test_init_then_call_is_encode_then_decode():
  model = _model("conv_A")
  variables, x = _init(model)
  logits, aux = model.apply(variables, x, jax.random.PRNGKey(3), train=False)
  mu, _ = model.apply(variables, x, method=model.encode)
  np.testing.assert_allclose(aux["mu"], mu, rtol=1e-6)
  decoded = model.apply(variables, aux["z"], method=model.decode)
  np.testing.assert_allclose(logits, decoded, rtol=1e-5, atol=1e-6)


def test_conv_vae_A_has_pytorch_parameter_count():
  model = models.get_model("conv_vae", **models.CONV_VAE_PRESETS["A"])
  variables, _ = _init(model)
  assert models.count_params(variables["params"]) == 308_357


def test_conv_vae_A_layers():
  params = _init_case("conv_A")[0]["params"]
  shapes = {name: tuple(p["kernel"].shape) for name, p in params.items()}
  assert shapes == {
      "encoder_convs_0": (4, 4, 1, 64),
      "encoder_convs_1": (4, 4, 64, 128),
      "mu_head": (128 * 7 * 7, 2),
      "logvar_head": (128 * 7 * 7, 2),
      "decoder_input": (2, 128 * 7 * 7),
      "decoder_convs_0": (4, 4, 128, 64),
      "decoder_convs_1": (4, 4, 64, 1),
  }


def test_mlp_vae_has_classic_784_512_256_2_layers():
  params = _init_case("mlp_default")[0]["params"]
  shapes = {name: tuple(p["kernel"].shape) for name, p in params.items()}
  assert shapes == {
      "encoder_layers_0": (784, 512),
      "encoder_layers_1": (512, 256),
      "mu_head": (256, 2),
      "logvar_head": (256, 2),
      "decoder_layers_0": (2, 256),
      "decoder_layers_1": (256, 512),
      "decoder_output": (512, 784),
  }


@pytest.mark.parametrize("case", ["mlp_default", "conv_A"])
def test_wrong_image_shape_names_the_config_field(case):
  model = _model(case)
  variables, _ = _init_case(case)
  x = jnp.zeros((BATCH, 32, 32, 3))
  pattern = (r"expects images of shape \(28, 28, 1\) \(config field `model.image_shape`\), "
             r"got \(32, 32, 3\)")
  with pytest.raises(ValueError, match=pattern):
    model.apply(variables, x, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=pattern):
    model.apply(variables, x, method=model.encode)


def test_wrong_latent_shape_raises():
  model = _model("conv_A")
  variables, _ = _init_case("conv_A")
  with pytest.raises(ValueError, match="model.latent_dim"):
    model.apply(variables, jnp.zeros((BATCH, 3)), method=model.decode)


@pytest.mark.parametrize("fields,field", [
    (dict(image_shape=(27, 27, 1)), "model.output_padding"),
    (dict(models.CONV_VAE_PRESETS["B"], image_shape=(30, 30, 1)), "model.decoder_padding"),
    (dict(output_padding=2), "model.output_padding"),
    (dict(image_shape=(4, 4, 1), channels=(8, 8, 8)), "model.channels"),
    (dict(channels=()), "model.channels"),
    (dict(image_shape=(28, 28)), "model.image_shape"),
    (dict(latent_dim=0), "model.latent_dim"),
])
def test_conv_vae_rejects_architecture_that_cannot_produce_image_shape(fields, field):
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    models.ConvVAE(**fields)


@pytest.mark.parametrize("image_shape", [(28, 20, 1), (32, 32, 3), (64, 64, 3), (8, 8, 1)])
def test_conv_vae_A_accepts_dataset_shapes(image_shape):
  # Frey faces, CIFAR-10, CelebA 64x64 and 8x8 digits all round-trip through A.
  model = models.ConvVAE(image_shape=image_shape, **models.CONV_VAE_PRESETS["A"])
  assert model._decoder_sizes()[-1] == image_shape[:2]


def test_mlp_vae_rejects_bad_fields():
  with pytest.raises(ValueError, match=r"model\.hidden_sizes"):
    models.MLPVAE(hidden_sizes=(512, 0))


def test_unknown_model_name_lists_known_models():
  with pytest.raises(ValueError, match=r"model\.name.*Known models: .*conv_vae.*mlp_vae"):
    models.get_model("dcgan_vae")


def test_unknown_model_field_is_named():
  with pytest.raises(ValueError, match=r"model\.latent_size"):
    models.get_model("conv_vae", latent_size=2)


def test_count_params_sums_leaves():
  assert models.count_params({"a": jnp.zeros((2, 3)), "b": [jnp.zeros(4)]}) == 10
