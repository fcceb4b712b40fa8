"""The adversarial family (DCGAN, AC-GAN, InfoGAN) and the classification family."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats

from jaxgen import models
from jaxgen import objectives
from jaxgen import train
from helpers import load_config

VARIANTS = ("mnist_dcgan", "mnist_acgan", "mnist_infogan")


def smoke_config(name, data_dir=None, **overrides):
  config = load_config(name, "smoke", **overrides)
  config.data.data_dir = data_dir
  return config


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  n = config.data.batch_size
  return {"image": rng.uniform(-1, 1, (n, *config.model.image_shape)).astype(np.float32),
          "label": rng.integers(0, 10, n).astype(np.int32)}


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("size,channels", [(28, 1), (64, 3)])
def test_generator_and_discriminator_shapes(size, channels):
  model = models.get_model("dcgan", image_shape=(size, size, channels), noise_dim=16,
                           num_categorical_codes=3, categorical_dim=10,
                           num_continuous_codes=2, **models.DCGAN_PRESETS[size])
  noise, images = jnp.zeros((2, 16)), jnp.zeros((2, size, size, channels))
  codes, cont = jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 2))
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.PRNGKey(0), noise, images, None, codes, cont)
  fake, out = jax.eval_shape(functools.partial(model.apply, train=False), variables, noise,
                             images, None, codes, cont)
  assert fake.shape == (2, size, size, channels)
  assert {k: v.shape for k, v in out.items()} == {
      "logit": (2,), "code_logits": (2, 3, 10), "continuous_mean": (2, 2),
      "continuous_log_std": (2, 2)}
  acgan = models.get_model("dcgan", image_shape=(size, size, channels), noise_dim=16,
                           num_classes=2, **models.DCGAN_PRESETS[size])
  v = jax.eval_shape(functools.partial(acgan.init, train=False), jax.random.PRNGKey(0),
                     noise, images, jnp.zeros(2, jnp.int32))
  out = jax.eval_shape(functools.partial(acgan.apply, train=False,
                                         method=acgan.discriminate), v, images)
  assert out["class_logits"].shape == (2, 2) and out["logit"].shape == (2,)
  if size == 64:
    # The paper's DCGAN: G's first map is 4x4x1024, D's last 4x4x1024.
    g = v["params"]["generator"]
    assert g["Dense_0"]["kernel"].shape == (16 + 2, 4 * 4 * 1024)
    assert v["params"]["discriminator"]["adv_head"]["kernel"].shape == (4, 4, 1024, 1)


def test_dcgan_64_computes_its_image_side_and_4x4_end_layers_as_dots():
  # G: 4x4 -> 8x8 and 32x32 -> 64x64x3 by im2col, the two middle layers as convs; D:
  # 64x64x3 -> 32x32 and 8x8 -> 4x4 by im2col. So each pass keeps 2 conv layers.
  model = models.get_model("dcgan", image_shape=(64, 64, 3), noise_dim=16,
                           **models.DCGAN_PRESETS[64])
  noise, images = jnp.zeros((2, 16)), jnp.zeros((2, 64, 64, 3))
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.PRNGKey(0), noise, images)

  def conv_count(method, *args):
    jaxpr = jax.make_jaxpr(functools.partial(model.apply, train=False, method=method))(
        variables, *args)
    return str(jaxpr).count("conv_general_dilated[")

  assert conv_count(model.generate, noise) == 2
  assert conv_count(model.discriminate, images) == 2


def test_dcgan_rejects_bad_fields():
  with pytest.raises(ValueError, match=r"divisible by 8.*model.g_features"):
    models.get_model("dcgan", image_shape=(28, 28, 1), g_features=(8, 8, 8))
  with pytest.raises(ValueError, match=r"model\.num_classes"):
    models.get_model("dcgan", image_shape=(28, 28, 1), num_classes=1,
                     **models.DCGAN_PRESETS[28])


# ------------------------------------------------------------------ steps
def _prepared(name):
  """(config, objective, mesh, replicated initial state) of a smoke config."""
  config = smoke_config(name)
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  return config, objective, mesh, train.init_state(objective, jax.random.PRNGKey(0),
                                                   _batch(config), mesh)


@pytest.mark.parametrize("name", VARIANTS)
def test_each_gan_step_traces_once_and_uses_each_optimizer_once(name):
  config, objective, mesh, state = _prepared(name)
  assert state.step.dtype == jnp.int32
  initial = jax.device_get(state)
  chex.clear_trace_counter()
  step = train.jit_train_step(chex.assert_max_traces(objective.train_step, n=1), mesh)
  for i in range(3):
    state, metrics = step(state, train.shard_batch(_batch(config, i), mesh),
                          jax.random.PRNGKey(1))
    if i == 0:
      # Adam's first step moves each parameter by its learning rate (m/sqrt(v) = +-1):
      # each network by its own optimizer, exactly once per train step.
      first = jax.device_get(state)
      d_lr = config.optimizer.learning_rate
      g_lr = config.optimizer.get("g_learning_rate", None) or d_lr
      for new, old, lr in ((first.d_params, initial.d_params, d_lr),
                           (first.g_params, initial.g_params, g_lr)):
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(
            jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old)))
        np.testing.assert_allclose(moved, lr, rtol=1e-3)
  assert int(state.step) == 3
  for key in ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake",
              "d_prob_real", "d_prob_fake", "loss"):
    assert np.isfinite(float(metrics[key])), key


def test_d_and_g_updates_leave_the_other_network_unchanged():
  """Checked on InfoGAN, where it is subtlest: Q's head sits on D but trains with G."""
  config, objective, _, state = _prepared("mnist_infogan")
  # One D update and (from the same state) one G update, in one compiled function.
  both = jax.jit(lambda s, b, r: (objective.d_update(s, b, r)[0],
                                  objective.g_update(s, b, r)[0]))
  batch = jax.tree_util.tree_map(jnp.asarray, _batch(config, 5))
  after_d, after_g = jax.device_get(both(state, batch, jax.random.PRNGKey(2)))
  before = jax.device_get(state)
  chex.assert_trees_all_equal(after_d.g_params, before.g_params)
  chex.assert_trees_all_equal(after_d.g_opt_state, before.g_opt_state)
  chex.assert_trees_all_equal(after_d.g_batch_stats, before.g_batch_stats)
  assert _all_leaves_differ(after_d.d_params, before.d_params)
  chex.assert_trees_all_equal(after_g.d_params, before.d_params)
  chex.assert_trees_all_equal(after_g.d_opt_state, before.d_opt_state)
  chex.assert_trees_all_equal(after_g.d_batch_stats, before.d_batch_stats)
  assert _all_leaves_differ(after_g.g_params, before.g_params)  # With InfoGAN's Q head.
  assert int(after_d.step) == int(after_g.step) == 0  # Only train_step counts steps.
  assert "q_head" in after_g.g_params and "q_head" not in after_g.d_params


def _all_leaves_differ(a, b) -> bool:
  return all(not np.array_equal(x, y) for x, y in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("name", ["mnist_dcgan", "mnist_infogan"])  # Conv / dense heads.
def test_eval_keeps_padding_out_of_the_discriminators_batch_statistics(name):
  config = smoke_config(name)
  objective = objectives.get_objective(config)
  batch = jax.tree_util.tree_map(jnp.asarray, _batch(config))
  state = jax.jit(objective.init_state)(jax.random.PRNGKey(0), batch)
  eval_step = jax.jit(objective.eval_step)
  real = batch["image"][:5]
  mask = jnp.array([1.0] * 5 + [0.0] * 3)
  # Whatever fills the padded slots, the real images' values do not change.
  zeros = eval_step(state, {"image": jnp.concatenate([real, jnp.zeros((3, 28, 28, 1))]),
                            "mask": mask}, jax.random.PRNGKey(0))
  ones = eval_step(state, {"image": jnp.concatenate([real, jnp.ones((3, 28, 28, 1))]),
                           "mask": mask}, jax.random.PRNGKey(0))
  for key in ("d_loss_real", "d_prob_real"):
    np.testing.assert_allclose(zeros[key][:5], ones[key][:5], rtol=1e-5, atol=1e-6)
  unmasked = eval_step(state, {"image": jnp.concatenate([real, jnp.ones((3, 28, 28, 1))]),
                               "mask": jnp.ones(8)}, jax.random.PRNGKey(0))
  assert not np.allclose(unmasked["d_prob_real"][:5], ones["d_prob_real"][:5])
  # A fully padded batch (multi-host) stays finite, so masked sums stay finite.
  empty = eval_step(state, {"image": batch["image"], "mask": jnp.zeros(8)},
                    jax.random.PRNGKey(0))
  assert all(np.isfinite(v).all() for v in jax.device_get(empty).values())


def test_num_params_counts_both_networks():
  config = smoke_config("mnist_infogan")
  objective = objectives.get_objective(config)
  state = jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), _batch(config))
  params = jax.eval_shape(functools.partial(objective.model.init, train=False),
                          jax.random.PRNGKey(0), jnp.zeros((2, 8)), jnp.zeros((2, 28, 28, 1)),
                          None, jnp.zeros((2, 1), jnp.int32), jnp.zeros((2, 2)))["params"]
  expected = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(params))
  assert objective.num_params(state) == expected > 0


def test_classifier_step_and_class_visualisations():
  config = load_config("mnist_classifier", "smoke")
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  batch = _batch(config)
  batch["image"] = (batch["image"] + 1) / 2
  state = train.init_state(objective, jax.random.PRNGKey(0), batch, mesh)
  chex.clear_trace_counter()
  step = train.jit_train_step(chex.assert_max_traces(objective.train_step, n=1), mesh)
  for _ in range(2):
    state, metrics = step(state, train.shard_batch(batch, mesh), jax.random.PRNGKey(1))
  # Cross-entropy in nats of 10 classes starts near log 10 (small random logits).
  assert abs(float(metrics["ce_nats"]) - math.log(10)) < 0.5
  per_example = objective.eval_step(state, jax.tree_util.tree_map(jnp.asarray, batch), None)
  assert per_example["accuracy"].shape == per_example["ce_nats"].shape == (8,)
  vis = jax.jit(objective.sample, static_argnums=2)(state, jax.random.PRNGKey(0), 4)
  assert vis.shape == (4, 28, 28, 1) and float(vis.min()) >= 0 and float(vis.max()) <= 1
  # Each visualisation raises the log-probability of its class above the grey start.
  labels = jnp.arange(4)
  def log_p(x):
    return jnp.take_along_axis(jax.nn.log_softmax(objective.logits(state, x)),
                               labels[:, None], -1)[:, 0]
  assert np.all(np.asarray(log_p(vis)) > np.asarray(log_p(jnp.full_like(vis, 0.5))))
  assert objective.embed(state, vis).shape == (4, config.model.hidden)
  with pytest.raises(ValueError, match=r"trains on labels.*data\.label_attribute"):
    objective.init_state(jax.random.PRNGKey(0), {"image": batch["image"]})


def test_infogan_terms_match_scipy():
  """Q's code losses (functions of jaxgen.losses) as the objective wires them."""
  objective = objectives.get_objective(smoke_config("mnist_infogan"))
  model = objective.model
  n, k, m = model.num_categorical_codes, model.categorical_dim, model.num_continuous_codes
  rng = np.random.default_rng(0)
  out_fake = {"code_logits": rng.normal(size=(4, n, k)),
              "continuous_mean": rng.normal(size=(4, m)),
              "continuous_log_std": rng.normal(scale=0.5, size=(4, m))}
  cond = {"codes": rng.integers(0, k, size=(4, n)), "continuous": rng.uniform(-1, 1, (4, m))}
  loss, terms = objective._info_terms(jax.tree_util.tree_map(jnp.asarray, out_fake),
                                      jax.tree_util.tree_map(jnp.asarray, cond))
  log_probs = special.log_softmax(out_fake["code_logits"], axis=-1)
  ce = -np.take_along_axis(log_probs, cond["codes"][..., None], -1)[..., 0].sum(axis=1)
  nll = -stats.norm(out_fake["continuous_mean"],
                    np.exp(out_fake["continuous_log_std"])).logpdf(cond["continuous"]).sum(1)
  np.testing.assert_allclose(terms["info_ce_nats"], ce, rtol=1e-5)
  np.testing.assert_allclose(terms["info_mi_bound_nats"], n * math.log(k) - ce, rtol=1e-5)
  np.testing.assert_allclose(terms["info_continuous_nll_nats"], nll, rtol=1e-5)
  np.testing.assert_allclose(loss, objective.info_weight * ce + objective.continuous_weight * nll,
                             rtol=1e-5)


# ------------------------------------------------------------------ bad input
def test_code_count_that_does_not_match_the_generator_fails_clearly():
  config = smoke_config("mnist_infogan")
  objective = objectives.get_objective(config)
  state = jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), _batch(config))
  noise = jnp.zeros((3, config.model.noise_dim))
  with pytest.raises(ValueError, match=r"1 categorical code.*model\.num_categorical_codes.*"
                                       r"\(3, 2\)"):
    jax.eval_shape(functools.partial(objective.generate, codes=jnp.zeros((3, 2), jnp.int32),
                                     continuous=jnp.zeros((3, 2))), state, noise)
  with pytest.raises(ValueError, match=r"2 continuous code.*got none"):
    jax.eval_shape(functools.partial(objective.generate, codes=jnp.zeros((3, 1), jnp.int32)),
                   state, noise)
  with pytest.raises(ValueError, match=r"auxiliary='infogan' needs latent codes"):
    objectives.get_objective(smoke_config("mnist_infogan", model__num_categorical_codes=0,
                                          model__num_continuous_codes=0))


@pytest.mark.parametrize("name,overrides,message", [
    ("mnist_dcgan", {"data__preprocessing": "unit"}, r"data\.preprocessing='symmetric'"),
    ("mnist_dcgan", {"objective__loss": "wasserstein"}, r"Unknown GAN loss 'wasserstein'"),
    ("mnist_dcgan", {"objective__auxiliary": "acgan"}, r"set model\.num_classes"),
    ("mnist_acgan", {"objective__auxiliary": "none"}, r"auxiliary='none'.*classes or codes"),
    ("mnist_dcgan", {"objective__loss": "hinge", "objective__label_smoothing": 0.1},
     r"label_smoothing applies to the BCE loss only"),
    ("mnist_dcgan", {"model__name": "conv_vae"}, r"model\.name='dcgan'"),
])
def test_bad_gan_configs_fail_clearly(name, overrides, message):
  config = smoke_config(name)
  if overrides.get("model__name") == "conv_vae":
    config = load_config("mnist_vae", "smoke", objective__name="adversarial")
    config.data.preprocessing = "symmetric"
  else:
    for key, value in overrides.items():
      section, field = key.split("__")
      config[section][field] = value
  with pytest.raises(ValueError, match=message):
    objectives.get_objective(config)


def test_acgan_on_a_dataset_without_labels_fails_clearly():
  config = smoke_config("mnist_acgan")
  objective = objectives.get_objective(config)
  batch = _batch(config)
  del batch["label"]
  with pytest.raises(ValueError, match=r"data\.label_attribute"):
    objective.init_state(jax.random.PRNGKey(0), batch)


def test_ema_generator_is_warmed_up_from_the_first_update():
  """The EMA follows G_n = ema_n = decay_n * ema_(n-1) + (1 - decay_n) * G_n with the
  warm-up decay min(d, (1 + n) / (10 + n)), recomputed here; the initial generator's weight
  is the product of the decays (0.1 * 2/11 * 3/12 after three updates)."""
  decay = 0.9
  config = smoke_config("mnist_dcgan", objective__ema_decay=decay)
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  state = train.init_state(objective, jax.random.PRNGKey(0), _batch(config), mesh)
  generator = lambda s: jax.device_get((s.g_params["generator"], s.g_batch_stats))
  expected = jax.tree.map(lambda g: np.asarray(g, np.float64), generator(state))
  chex.assert_trees_all_equal(jax.device_get(objective.sampling_generator(state)),
                              generator(state))
  step = train.jit_train_step(objective.train_step, mesh)
  for n in range(3):
    state, _ = step(state, train.shard_batch(_batch(config, n), mesh), jax.random.PRNGKey(n))
    d_n = min(decay, (1 + n) / (10 + n))
    expected = jax.tree.map(lambda e, g: d_n * e + (1 - d_n) * np.asarray(g, np.float64),
                            expected, generator(state))
  chex.assert_trees_all_close(jax.device_get(objective.sampling_generator(state)), expected,
                              rtol=1e-5, atol=1e-6)
  assert math.prod(min(decay, (1 + n) / (10 + n)) for n in range(10)) < 1e-3
  chex.assert_trees_all_equal(jax.device_get(objective.sampling_generator(state, False)),
                              generator(state))
