"""`model.init='torch'`: PyTorch's default initialisation of Dense, conv and transposed-conv
layers, checked against PyTorch's own fan-in rule and distribution; 'flax' unchanged."""

import json
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from helpers import load_config
from jaxgen import config_lib
from jaxgen import errors
from jaxgen import main
from jaxgen import models
from jaxgen import objectives
from jaxgen import workdir
from jaxgen.models import layers
from jaxgen.models import param_init

# (kind, in channels, out channels, kernel size; None for a Dense layer). Each conv kind
# has cases with in > out and in < out, so taking the wrong side's channels is caught.
LAYER_CASES = [
    ("linear", 300, 200, None),
    ("linear", 7, 4000, None),
    ("conv", 32, 64, 3),
    ("conv", 3, 2000, 4),
    ("conv", 64, 8, 1),
    ("conv_transpose", 16, 8, 4),
    ("conv_transpose", 4, 1500, 3),
    ("conv_transpose", 200, 3, 2),
]
CASE_IDS = [f"{kind}-{c_in}-{c_out}-k{k}" for kind, c_in, c_out, k in LAYER_CASES]


def _layer(kind, c_out, k):
  """The project's layer of `kind` with `c_out` outputs."""
  if kind == "linear":
    return nn.Dense(c_out)
  if kind == "conv":
    return layers.Conv2d(c_out, k, 1, 0)
  return layers.ConvTranspose(c_out, k, 1, 0)


def _input(kind, c_in, k):
  return jnp.ones((1, c_in)) if kind == "linear" else jnp.ones((1, k, k, c_in))


def _pytorch_weight_shape(kind, c_in, c_out, k):
  """The shape of the weight of PyTorch's nn.Linear / nn.Conv2d / nn.ConvTranspose2d."""
  return {"linear": (c_out, c_in), "conv": (c_out, c_in, k, k),
          "conv_transpose": (c_in, c_out, k, k)}[kind]


def _pytorch_fan_in(weight_shape):
  """torch.nn.init._calculate_fan_in_and_fan_out's fan-in: size(1) * receptive field."""
  return weight_shape[1] * math.prod(weight_shape[2:])


def _torch_params(kind, c_in, c_out, k, seed=0):
  layer = _layer(kind, c_out, k)
  with param_init.drawing("torch"):
    return layer.init(jax.random.PRNGKey(seed), _input(kind, c_in, k))["params"]


@pytest.mark.parametrize("kind,c_in,c_out,k", LAYER_CASES, ids=CASE_IDS)
def test_fan_in_is_pytorchs_for_each_layer_kind(kind, c_in, c_out, k):
  kernel = _torch_params(kind, c_in, c_out, k)["kernel"]
  expected = _pytorch_fan_in(_pytorch_weight_shape(kind, c_in, c_out, k))
  assert param_init.torch_fan_in(kind, kernel.shape) == expected
  # The transposed conv's quirk: PyTorch counts its *output* channels.
  if kind == "conv_transpose":
    assert expected == c_out * k * k


@pytest.mark.parametrize("kind,c_in,c_out,k", LAYER_CASES, ids=CASE_IDS)
def test_weights_and_biases_are_uniform_within_one_over_sqrt_fan_in(kind, c_in, c_out, k):
  params = _torch_params(kind, c_in, c_out, k)
  bound = 1.0 / math.sqrt(_pytorch_fan_in(_pytorch_weight_shape(kind, c_in, c_out, k)))
  for name in ("kernel", "bias"):
    assert params[name].dtype == jnp.float32
    values = np.asarray(params[name], np.float64).ravel()
    assert np.all(np.abs(values) <= bound), name
    if values.size >= 1000:
      # U(-b, b): the extremes come close to b, the variance is b^2 / 3, and the
      # empirical CDF is that of the uniform (a wrong fan-in fails all three).
      assert np.abs(values).max() > 0.99 * bound, name
      assert np.var(values) == pytest.approx(bound**2 / 3, rel=0.1), name
      assert stats.kstest(values, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3, name


@pytest.mark.parametrize("kind,c_in,c_out,k", LAYER_CASES[:1] + LAYER_CASES[5:6],
                         ids=CASE_IDS[:1] + CASE_IDS[5:6])
def test_torch_draws_depend_only_on_the_rng(kind, c_in, c_out, k):
  first, again = _torch_params(kind, c_in, c_out, k), _torch_params(kind, c_in, c_out, k)
  other = _torch_params(kind, c_in, c_out, k, seed=1)
  assert all(np.array_equal(first[n], again[n]) for n in first)
  assert not any(np.array_equal(first[n], other[n]) for n in first)


@pytest.mark.parametrize("kind,c_in,c_out,k", LAYER_CASES[:1] + LAYER_CASES[2:3] +
                         LAYER_CASES[5:6], ids=CASE_IDS[:1] + CASE_IDS[2:3] + CASE_IDS[5:6])
def test_bounds_agree_with_pytorchs_own_layers(kind, c_in, c_out, k):
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  module = {"linear": lambda: torch.nn.Linear(c_in, c_out),
            "conv": lambda: torch.nn.Conv2d(c_in, c_out, k),
            "conv_transpose": lambda: torch.nn.ConvTranspose2d(c_in, c_out, k)}[kind]()
  fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
  params = _torch_params(kind, c_in, c_out, k)
  assert param_init.torch_fan_in(kind, params["kernel"].shape) == fan_in
  bound = 1.0 / math.sqrt(fan_in)
  for theirs, ours in ((module.weight, params["kernel"]), (module.bias, params["bias"])):
    assert float(theirs.abs().max()) <= bound and float(jnp.abs(ours).max()) <= bound


def test_layers_with_their_own_initialiser_keep_it():
  """A layer given a kernel_init keeps it (its draw is flax's); its default bias is PyTorch's."""
  layer = nn.Dense(3000, kernel_init=nn.initializers.normal(0.02))
  x = jnp.ones((1, 50))
  flax_params = layer.init(jax.random.PRNGKey(0), x)["params"]
  with param_init.drawing("torch"):
    torch_params = layer.init(jax.random.PRNGKey(0), x)["params"]
  np.testing.assert_array_equal(torch_params["kernel"], flax_params["kernel"])
  assert not np.any(flax_params["bias"])
  assert float(jnp.abs(torch_params["bias"]).max()) == pytest.approx(1 / math.sqrt(50), rel=0.01)


def _small_conv_vae():
  return models.get_model("conv_vae", image_shape=(8, 8, 1), channels=(4, 6), latent_dim=3)


def test_init_output_is_that_of_the_drawn_parameters():
  model = _small_conv_vae()
  x, rng = jnp.full((2, 8, 8, 1), 0.5), jax.random.PRNGKey(3)
  with param_init.drawing("torch"):
    (logits, _), variables = model.init_with_output(jax.random.PRNGKey(0), x, rng)
  np.testing.assert_allclose(logits, model.apply(variables, x, rng)[0], rtol=1e-6)


def _same(a, b) -> bool:
  return all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.array_equal, a, b)))


def _init_state(config):
  objective = objectives.get_objective(config)
  batch = {"image": jnp.zeros((2, *config.model.image_shape)),
           "label": jnp.zeros(2, jnp.int32)}
  return objective.init_state(jax.random.PRNGKey(0), batch)


def _plain_init(config):
  """Model A's parameters drawn as the autoencoding family drew them before `model.init`."""
  model = models.get_model("conv_vae", **models.module_fields(config.model))
  init_rng, z_rng = jax.random.split(jax.random.PRNGKey(0))
  with jax.threefry_partitionable(False):
    variables = model.init(init_rng, jnp.zeros((2, 28, 28, 1)), z_rng, train=False)
  return {"model": variables["params"]}


@pytest.fixture(scope="module")
def model_a_states():
  """Model A's initial states: init=flax, init=torch, and a config without the field."""
  old = load_config("mnist_vae", "smoke")
  del old.model["init"]
  return {"flax": _init_state(load_config("mnist_vae", "smoke,init=flax")),
          "torch": _init_state(load_config("mnist_vae", "smoke,init=torch")),
          "absent": _init_state(old)}


def test_model_a_flax_is_bit_identical_to_the_plain_init(model_a_states):
  """init=flax, and a config written before `model.init` existed, draw what flax draws."""
  plain = _plain_init(load_config("mnist_vae", "smoke"))
  assert _same(model_a_states["flax"].params, plain)
  assert _same(model_a_states["absent"].params, plain)


def test_model_a_torch_changes_every_kernel_and_bias_to_pytorchs_bounds(model_a_states):
  flax_state, torch_state = model_a_states["flax"], model_a_states["torch"]
  flax_leaves = dict(jax.tree_util.tree_flatten_with_path(flax_state.params)[0])
  torch_leaves = dict(jax.tree_util.tree_flatten_with_path(torch_state.params)[0])
  assert flax_leaves.keys() == torch_leaves.keys() and len(flax_leaves) == 14
  # Model A: conv k4 1->64, 64->128; Dense heads from 7*7*128; Dense 2 -> 7*7*128;
  # ConvT k4 128->64, 64->1 (fan-in from the *output* channels).
  fan_ins = {"encoder_convs_0": 16, "encoder_convs_1": 64 * 16, "mu_head": 6272,
             "logvar_head": 6272, "decoder_input": 2, "decoder_convs_0": 64 * 16,
             "decoder_convs_1": 1 * 16}
  for path, value in torch_leaves.items():
    layer, name = path[-2].key, path[-1].key
    assert name in ("kernel", "bias") and value.shape == flax_leaves[path].shape
    assert not np.array_equal(value, flax_leaves[path]), (layer, name)
    bound = 1 / math.sqrt(fan_ins[layer])
    assert float(jnp.abs(value).max()) <= bound, (layer, name)
    if value.size >= 500:  # Then the largest of a U(-b, b) sample is within 5% of b.
      assert float(jnp.abs(value).max()) > 0.95 * bound, (layer, name)
  assert torch_state.model_state is None and flax_state.model_state is None


def test_batch_norm_stays_one_and_zero_under_torch():
  config = load_config("celeba_vae", "smoke")
  config.model.image_shape = (16, 16, 3)
  config.model.channels = (4, 8)
  config.model.latent_dim = 3
  config.model.init = "torch"
  state = _init_state(config)
  params = state.params["model"]
  norms = [n for n in params if "norm" in n]
  assert norms and all(set(params[n]) == {"scale", "bias"} for n in norms)
  for n in norms:
    np.testing.assert_array_equal(params[n]["scale"], 1.0)
    np.testing.assert_array_equal(params[n]["bias"], 0.0)
  stats_ = state.model_state["batch_stats"]
  for n in stats_:
    np.testing.assert_array_equal(stats_[n]["mean"], 0.0)
    np.testing.assert_array_equal(stats_[n]["var"], 1.0)
  # The convs' kernels do change: no biases before BatchNorm, so look at a kernel.
  bound = 1 / math.sqrt(3 * 16)
  kernel = params["encoder_convs_0"]["kernel"]
  assert bound * 0.9 < float(jnp.abs(kernel).max()) <= bound


def test_classifier_takes_torch_init_too():
  config = load_config("mnist_classifier", "smoke")
  config.model.init = "torch"
  params = _init_state(config).params["model"]
  assert float(jnp.abs(params["head"]["kernel"]).max()) <= 1 / math.sqrt(config.model.hidden)
  assert float(jnp.abs(params["head"]["bias"]).max()) > 0


@pytest.mark.parametrize("value", ["pytorch", "Torch", "", None, 1])
def test_a_bad_value_names_the_field_and_the_allowed_values(value):
  config = load_config("mnist_vae", "smoke")
  del config.model["init"]  # Replaced whatever its type.
  config.model.init = value
  with pytest.raises(errors.ConfigError, match=r"^Config field model.init must "):
    config_lib.validate(config)
  if isinstance(value, str) and value:
    with pytest.raises(errors.ConfigError, match=r"model.init must be one of 'flax', 'torch' "
                                                 rf".*got {value!r}; set one of them"):
      objectives.get_objective(config)


@pytest.mark.parametrize("name,reason", [("mnist_dcgan", r"N\(0, 0.02\) on purpose"),
                                         ("mnist_gaussian", r"no Dense or conv layers")])
def test_models_that_keep_their_own_init_refuse_torch(name, reason):
  config = load_config(name, "smoke")
  config.model.init = "torch"
  with pytest.raises(errors.ConfigError, match=rf"model.init='torch' does not apply to "
                                               rf"model.name='\w+': .*{reason}.*set it to 'flax'"):
    objectives.get_objective(config)
  config.model.init = "flax"
  objectives.get_objective(config)


def test_a_workdir_written_before_the_field_resumes_as_flax(tmp_path):
  config = load_config("mnist_vae", "smoke")
  stored = workdir.config_to_dict(config)
  del stored["model"]["init"]
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(stored))
  workdir.write_or_check_config(str(tmp_path), config)  # init='flax': resumes.
  (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(stored))
  config.model.init = "torch"
  with pytest.raises(errors.ConfigError, match=r"model.init: workdir has 'flax', command "
                                               r"has 'torch'"):
    workdir.write_or_check_config(str(tmp_path), config)


def test_the_command_line_rejects_a_bad_value_in_one_paragraph(tmp_path, capsys):
  status = main.main(["jaxgen", "--config=configs/mnist_vae.py:smoke",
                      f"--workdir={tmp_path}", "--config.model.init=pytorch"])
  err = capsys.readouterr().err
  assert status == 2 and "Traceback" not in err
  assert re.search(r"Config field model.init must be one of 'flax', 'torch' .*got 'pytorch'",
                   err)
