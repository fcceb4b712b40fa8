"""Mixed precision (`model.dtype='bfloat16'`): bf16 compute, float32 state and losses."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config_lib
from jaxgen import models
from jaxgen import objectives
from jaxgen.models import layers
from helpers import load_config

# (config, variant): the conv VAE A of configs/mnist_vae.py, and a DCGAN with BatchNorm in
# both networks.
FAMILIES = {"vae": ("mnist_vae", "smoke"), "gan": ("mnist_dcgan", "smoke")}
BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)


def _objective(family: str, dtype: str):
  config = load_config(*FAMILIES[family])
  config.model.dtype = dtype
  return objectives.get_objective(config), config


def _batch(config):
  """Digit-like images: dark background, random intensities on one fixed 20% of pixels."""
  rng = np.random.default_rng(0)
  strokes = rng.uniform(size=(1, 28, 28, 1)) < 0.2
  images = (strokes * rng.uniform(size=(config.data.batch_size, 28, 28, 1))).astype(np.float32)
  if config.data.preprocessing == "symmetric":
    images = 2.0 * images - 1.0
  return {"image": jnp.asarray(images)}


@functools.cache
def _setup(family: str):
  """float32 and bf16 objectives of one family, a batch, a float32-initialised state and
  the jitted bf16 train step (built once per family: compiles dominate these tests)."""
  f32, config = _objective(family, "float32")
  bf16, _ = _objective(family, "bfloat16")
  batch = _batch(config)
  # Non-partitionable threefry: the same kind of init, compiled several times faster.
  with jax.threefry_partitionable(False):
    state = jax.jit(f32.init_state)(jax.random.PRNGKey(0), batch)
  return f32, bf16, batch, state, jax.jit(bf16.train_step)


def _float_dtypes(tree) -> set[str]:
  return {str(x.dtype) for x in jax.tree_util.tree_leaves(tree)
          if jnp.issubdtype(x.dtype, jnp.floating)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bf16_keeps_params_opt_state_and_batch_stats_float32(family):
  _, bf16, batch, state, bf16_step = _setup(family)
  # Every floating leaf: parameters, Adam moments, BatchNorm statistics (GAN: both nets),
  # at init and after a step.
  assert _float_dtypes(jax.eval_shape(bf16.init_state, jax.random.PRNGKey(0), batch)) == {
      "float32"}
  state, metrics = bf16_step(state, batch, jax.random.PRNGKey(1))
  assert _float_dtypes(state) == {"float32"}
  if family == "gan":
    assert jax.tree_util.tree_leaves(state.d_batch_stats)
    assert jax.tree_util.tree_leaves(state.g_batch_stats)
  assert _float_dtypes(metrics) == {"float32"}


def _module_outputs(model, variables, *args, **kwargs) -> dict[str, jax.Array]:
  """{path: output} of every module call (flax `capture_intermediates`), floats only."""
  apply = functools.partial(model.apply, capture_intermediates=True,
                            mutable=["intermediates", "batch_stats"], **kwargs)
  _, captured = jax.jit(apply)(variables, *args)
  return {jax.tree_util.keystr(path): leaf for path, leaf in
          jax.tree_util.tree_leaves_with_path(captured["intermediates"])
          if jnp.issubdtype(leaf.dtype, jnp.floating)}


def test_vae_activations_are_bf16_and_its_outputs_float32():
  f32, bf16, batch, state, _ = _setup("vae")
  model = bf16.model
  variables = {"params": state.params["model"]}
  rng = jax.random.PRNGKey(2)
  outputs = _module_outputs(model, variables, batch["image"], rng)
  layer_outputs = {k: v.dtype for k, v in outputs.items() if not k.startswith("['__call__']")}
  # Conv A: 2 convs, mu and logvar heads, the decoder's dense layer, 2 transposed convs.
  assert len(layer_outputs) == 7, layer_outputs
  assert set(layer_outputs.values()) == {BF16}, layer_outputs
  # The decoder's logits leave the model in bf16; mu, logvar and z are float32 on purpose.
  assert outputs["['__call__'][0][0]"].dtype == jnp.bfloat16
  for name in ("mu", "logvar", "z"):
    assert outputs[f"['__call__'][0][1]['{name}']"].dtype == jnp.float32
  # The float32 model computes in float32 throughout (so the checks above can fail).
  f32_outputs = _module_outputs(f32.model, variables, batch["image"], rng)
  assert {v.dtype for v in f32_outputs.values()} == {F32}
  # The objective casts before its losses and hands float32 to the loop.
  z = jnp.zeros((2, model.latent_dim))
  decode = functools.partial(model.apply, method=model.decode)
  assert jax.eval_shape(decode, variables, z).dtype == BF16
  assert jax.eval_shape(bf16.decode_raw, state, z).dtype == F32
  assert jax.eval_shape(lambda s, r: bf16.sample(s, r, 2), state, rng).dtype == F32
  assert _float_dtypes(jax.eval_shape(bf16.eval_step, state, batch, rng)) == {"float32"}


def test_gan_activations_are_bf16():
  _, bf16, batch, state, _ = _setup("gan")
  model = bf16.model
  variables = {"params": {"generator": state.g_params["generator"],
                          "discriminator": state.d_params},
               "batch_stats": {"generator": state.g_batch_stats,
                               "discriminator": state.d_batch_stats}}
  noise = jnp.zeros((batch["image"].shape[0], model.noise_dim))
  generator = _module_outputs(model, variables, noise, train=True, method=model.generate)
  discriminator = _module_outputs(model, variables, batch["image"], train=True,
                                  method=model.discriminate)
  dtypes = {k: v.dtype for k, v in {**generator, **discriminator}.items()}
  assert set(dtypes.values()) == {BF16}, dtypes
  # BatchNorm layers compute in bf16 in both networks (their statistics stay float32).
  assert sum("BatchNorm" in k for k in generator) == 2, generator.keys()
  assert sum("BatchNorm" in k for k in discriminator) == 1, discriminator.keys()
  sample = jax.eval_shape(lambda s, r: bf16.sample(s, r, 2), state, jax.random.PRNGKey(0))
  assert sample.dtype == F32


# Every VAE / autoencoder with the switch, tiny: (model name, fields, image shape).
TINY_AUTOENCODERS = [
    ("mlp_vae", dict(hidden_sizes=(8,)), (28, 28, 1)),
    ("conv_vae", dict(models.CONV_VAE_PRESETS["B"], channels=(4, 8)), (28, 28, 1)),
    ("conv5_vae", dict(initial_filters=2), (28, 20, 1)),
    ("celeba_conv_vae", dict(channels=(4, 8), latent_dim=4), (16, 16, 3)),
    ("resnet_vae", dict(width=4, stage_multipliers=(1, 2), blocks_per_stage=1,
                        latent_dim=4), (8, 8, 3)),
    ("fc_autoencoder", dict(hidden_dim=16, latent_dim=8), (8, 8, 3)),
]


@pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")  # Model B on purpose.
@pytest.mark.parametrize("name,fields,image_shape", TINY_AUTOENCODERS,
                         ids=[m[0] for m in TINY_AUTOENCODERS])
def test_every_autoencoder_computes_in_bf16_with_float32_variables(name, fields, image_shape):
  model = models.get_model(name, image_shape=image_shape, dtype="bfloat16", **fields)
  x = jax.ShapeDtypeStruct((4, *image_shape), jnp.float32)
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
  # Shapes and dtypes only (jax.eval_shape): nothing is compiled.
  variables = jax.eval_shape(functools.partial(model.init, train=False), rng, x, rng)
  assert _float_dtypes(variables) == {"float32"}  # params (and BatchNorm statistics)
  apply = functools.partial(model.apply, train=True, capture_intermediates=True,
                            mutable=["intermediates", "batch_stats"])
  (out, _), captured = jax.eval_shape(apply, variables, x, rng)
  layer_outputs = {jax.tree_util.keystr(p): v.dtype for p, v in
                   jax.tree_util.tree_leaves_with_path(captured["intermediates"])
                   if not jax.tree_util.keystr(p).startswith("['__call__']")}
  assert len(layer_outputs) >= 4 and set(layer_outputs.values()) == {BF16}, layer_outputs
  assert out.dtype == BF16
  assert _float_dtypes(captured.get("batch_stats", {})) <= {"float32"}


@pytest.mark.parametrize("family,metric_names", [("vae", ("loss", "kl_nats")),
                                                 ("gan", ("d_loss", "g_loss"))])
def test_bf16_loss_at_init_is_within_two_percent_of_float32(family, metric_names):
  f32, bf16, batch, state, _ = _setup(family)
  rng = jax.random.PRNGKey(3)
  exact = jax.jit(f32.eval_step)(state, batch, rng)
  mixed = jax.jit(bf16.eval_step)(state, batch, rng)
  for name in metric_names:
    want, got = float(jnp.mean(exact[name])), float(jnp.mean(mixed[name]))
    assert got == pytest.approx(want, rel=0.02), name
  # bf16 really ran: the loss is close to, but not bit-equal to, the float32 one.
  assert float(jnp.mean(mixed["loss"])) != float(jnp.mean(exact["loss"]))


def test_a_few_bf16_steps_reduce_the_vae_loss():
  _, _, batch, state, step = _setup("vae")
  losses = []
  for i in range(8):
    state, metrics = step(state, batch, jax.random.PRNGKey(i))
    losses.append(float(metrics["loss"]))
  assert all(np.isfinite(losses))
  # One fixed batch: the negative ELBO falls steadily as the model learns the background.
  assert losses[-1] < 0.9 * losses[0], losses
  assert all(b < a for a, b in zip(losses[:-1:2], losses[2::2])), losses


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_unknown_dtype_names_the_field_and_allowed_values(family):
  with pytest.raises(ValueError, match=r"model\.dtype.*'float32', 'bfloat16'.*'float16'"):
    _objective(family, "float16")
  config = load_config(*FAMILIES[family])
  config.model.dtype = "half"
  with pytest.raises(ValueError, match=r"model\.dtype.*'half'"):
    config_lib.validate(config)


def test_dtype_names_and_models_without_the_switch():
  assert layers.compute_dtype("bfloat16") == jnp.bfloat16
  assert layers.compute_dtype(jnp.float32) == jnp.float32
  assert config_lib.check_model_dtype(jnp.bfloat16) == "bfloat16"
  # The Gaussian baseline has no compute dtype: the field is refused by name.
  config = load_config("mnist_gaussian")
  config.model.dtype = "bfloat16"
  with pytest.raises(ValueError, match=r"model\.dtype"):
    objectives.get_objective(config)
