"""Config conventions: variant arguments, required fields, every config file loads."""

import glob
import math
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from helpers import REPO, load_config
from jaxgen import config_lib
from jaxgen import errors
from jaxgen import objectives
from jaxgen import reporting


def test_parse_arg_casts_values_and_flags():
  args = config_lib.parse_arg("model=B,latent=10,smoke", {"model": "A", "latent": 0, "smoke": False})
  assert (args.model, args.latent, args.smoke) == ("B", 10, True)


@pytest.mark.parametrize("arg,message", [
    ("modle=B", r"Unknown config argument 'modle'.*Known arguments: latent, model"),
    ("latent=ten", r"latent='ten' is not a int"),
    ("latent", r"'latent' needs a value"),
])
def test_parse_arg_rejects_bad_arguments(arg, message):
  with pytest.raises(ValueError, match=message):
    config_lib.parse_arg(arg, {"model": "A", "latent": 0})


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))))
def test_every_config_file_is_valid_and_documents_its_launch_command(path):
  name = os.path.basename(path)[:-3]
  config = load_config(name)
  config_lib.validate(config)
  smoke = load_config(name, "smoke")
  config_lib.validate(smoke)
  assert smoke.train.num_steps <= 20
  text = open(path).read()
  assert f"python -m jaxgen.main --config=configs/{name}.py" in text


def test_validate_names_missing_fields():
  config = load_config("mnist_vae")
  del config.train["checkpoint_every"]
  with pytest.raises(errors.ConfigError,
                     match=r"missing required field\(s\): train.checkpoint_every"):
    config_lib.validate(config)


def _documented_variants():
  """(config name, arg) for the file and every variant its docstring shows."""
  cases = []
  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    args = set(re.findall(rf"configs/{name}\.py:([^\s`'\"]*)", open(path).read()))
    cases += [(name, arg or None) for arg in sorted(args | {"", "smoke"})]
  return cases


@pytest.mark.parametrize("name,arg", _documented_variants())
def test_every_documented_variant_validates_and_builds(name, arg):
  config = load_config(name, arg)
  config_lib.validate(config)
  objectives.get_objective(config)  # Checks train.curve_metrics too.


def _set(config, field, value):
  """Sets a dotted field whatever its declared type (replacing the field)."""
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  if leaf in node:
    del node[leaf]
  node[leaf] = value


def _bad_values(allowed: config_lib.FieldRange):
  if allowed.low is not None:
    yield (allowed.low if allowed.low_open else allowed.low - 1)
  if allowed.high is not None:
    yield (allowed.high if allowed.high_open else allowed.high + 1)
  if allowed.kind == "float":
    yield from (math.nan, math.inf)
  else:
    yield 1.5
  if allowed.none is None:
    yield None
  yield "1"
  yield True


def _good_values(allowed: config_lib.FieldRange):
  low = allowed.low if allowed.low is not None else -1
  if allowed.high is not None:
    value = (low + allowed.high) / 2
  else:
    value = low + 1 if allowed.low_open else low
  value = int(value) if allowed.kind == "int" else float(value)
  yield value
  if allowed.none is not None:
    yield None
  if allowed.per_item:
    yield (value, value)


BAD_FIELDS = [(field, value) for field, allowed in config_lib.FIELD_RANGES.items()
              for value in _bad_values(allowed)]


@pytest.mark.parametrize("field,value", BAD_FIELDS,
                         ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_validate_rejects_each_out_of_range_field_naming_it(field, value):
  config = load_config("mnist_vae", "smoke")
  _set(config, field, value)
  with pytest.raises(errors.ConfigError, match=rf"^Config field {re.escape(field)} .*must be "
                                               rf".*, got {re.escape(repr(value))}; set it "):
    config_lib.validate(config)


GOOD_FIELDS = [(field, value) for field, allowed in config_lib.FIELD_RANGES.items()
               for value in _good_values(allowed)]


@pytest.mark.parametrize("field,value", GOOD_FIELDS,
                         ids=[f"{f}={v!r}" for f, v in GOOD_FIELDS])
def test_validate_accepts_in_range_values(field, value):
  config = load_config("mnist_vae", "smoke")
  _set(config, field, value)
  config_lib.validate(config)


@pytest.mark.parametrize("field,value,message", [
    ("train.max_to_keep", 0, r"integer >= 1"),
    ("train.log_every", -1, r"integer >= 1"),
    ("train.eval_every", 0, r"integer >= 1"),
    ("train.checkpoint_every", 0, r"integer >= 1"),
    ("optimizer.grad_clip_norm", 0.0, r"finite number > 0, or None \(no clipping\)"),
    ("optimizer.learning_rate", -1.0, r"finite number > 0"),
    ("optimizer.learning_rate", math.inf, r"finite number > 0"),
    ("optimizer.g_learning_rate", 0.0, r"> 0, or None \(optimizer.learning_rate\)"),
    ("objective.beta", math.nan, r"finite number >= 0"),
    ("model.output_padding", -1, r"integer >= 0"),
    ("model.output_padding", (0, -1), r"integer >= 0 \(or a tuple"),
    ("data.batch_size", 0, r"integer >= 1"),
    ("train.num_eval_batches", 0, r"integer >= 1.*or None \(the whole eval split\)"),
    ("seed", -1, r"integer in \[0, 4294967295\]"),
])
def test_reported_bad_values_are_rejected_before_training(field, value, message):
  config = load_config("mnist_vae", "smoke")
  _set(config, field, value)
  with pytest.raises(errors.ConfigError, match=rf"Config field {re.escape(field)} .*{message}"):
    config_lib.validate(config)


@pytest.mark.parametrize("field", config_lib.NAME_FIELDS)
@pytest.mark.parametrize("value", [None, "", " ", 3])
def test_validate_rejects_empty_names(field, value):
  config = load_config("mnist_vae", "smoke")
  _set(config, field, value)
  with pytest.raises(errors.ConfigError, match=rf"^Config field {re.escape(field)} must name a "
                                               rf"choice \(a non-empty string\), got "):
    config_lib.validate(config)


def test_none_able_fields_accept_none():
  config = load_config("mnist_vae", "smoke")
  config.train.num_eval_batches = None
  config.optimizer.grad_clip_norm = None
  config_lib.validate(config)


def test_validate_checks_curve_metrics_type():
  config = load_config("mnist_vae", "smoke")
  _set(config, "train.curve_metrics", ())
  with pytest.raises(errors.ConfigError, match=r"train.curve_metrics must be a non-empty tuple"):
    config_lib.validate(config)


def test_unlogged_curve_metric_fails_when_the_objective_is_built():
  config = load_config("mnist_vae", "smoke")
  config.train.curve_metrics = ("loss", "foo")
  with pytest.raises(errors.ConfigError, match=r"train.curve_metrics names 'foo', which "
                                               r"objective.name='autoencoding' does not log; "
                                               r"it logs elbo_nats, grad_norm"):
    objectives.get_objective(config)


def _stdout_of_fresh_interpreter(code: str) -> str:
  """What `code` prints in a new Python process (whose imports start from nothing)."""
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, check=True).stdout


def test_validate_and_config_loading_import_neither_jax_nor_tensorflow():
  out = _stdout_of_fresh_interpreter(
      "import sys; from jaxgen import config_lib; "
      "c = config_lib.load('configs/mnist_vae.py:smoke'); config_lib.validate(c); "
      "[config_lib.validate(config_lib.load(n)) for n in ('celeba_dcgan', 'mnist_gaussian')]; "
      "print(sorted(m for m in ('jax', 'tensorflow', 'flax') if m in sys.modules))")
  assert out.strip() == "[]", out


def test_the_loop_and_the_command_lines_import_tensorflow_only_when_data_is_used():
  # TensorFlow costs seconds and most of the memory: only the input pipeline needs it.
  out = _stdout_of_fresh_interpreter(
      "import sys; import jaxgen.train, jaxgen.main, jaxgen.evaluate, benchmarks.run; "
      "from jaxgen import data; before = 'tensorflow' in sys.modules; "
      "data.get_builder; import tensorflow_datasets as tfds; "
      "print(before, 'tensorflow' in sys.modules, tfds.builder('mnist_5k').name)")
  # The first use of a data name imports TF and registers the local builders.
  assert out.split() == ["False", "True", "mnist_5k"], out


def test_missing_config_file_names_its_path(tmp_path):
  path = str(tmp_path / "nope.py")
  with pytest.raises(FileNotFoundError, match=rf"No config file {re.escape(repr(path))}"):
    config_lib.load(path)


def test_mnist_vae_variants_pick_the_documented_models():
  a, b, c, mlp = (load_config("mnist_vae", f"model={m}") for m in ("A", "B", "C", "mlp"))
  assert (a.model.decoder_kernel_size, a.model.latent_dim) == (4, 2)
  assert (b.model.decoder_kernel_size, b.model.decoder_padding, b.model.output_padding) == (3, 1, 1)
  assert (c.model.kernel_size, c.model.latent_dim) == (3, 10)
  assert mlp.model.name == "mlp_vae" and tuple(mlp.model.hidden_sizes) == (512, 256)
  assert load_config("mnist_vae", "latent=10").model.latent_dim == 10
  assert isinstance(a, ml_collections.ConfigDict) and a.data.name == "mnist_5k"


# The GAN configs' documented variants: (name, arg, noise size, conditioning width), as
# each config's docstring describes them. G's input is the noise, then the one-hot class
# (AC-GAN) or the one-hot categorical codes and the continuous codes (InfoGAN).
GAN_VARIANTS = [
    ("mnist_dcgan", "", 64, 0),
    ("mnist_dcgan", "steps=6000", 64, 0),
    ("mnist_acgan", "", 64, 10),
    ("mnist_infogan", "", 62, 1 * 10 + 2),
    ("mnist_infogan", "continuous=0", 62, 1 * 10),
    ("celeba_dcgan", "", 100, 0),
    ("celeba_dcgan", "source=catalog,steps=50000", 100, 0),
    ("celeba_acgan", "", 100, 2),
    ("celeba_acgan", "attribute=Male,source=catalog", 100, 2),
    ("celeba_infogan", "", 128, 10 * 10),
    ("celeba_infogan", "continuous=2,source=catalog", 128, 10 * 10 + 2),
]


# What figures/learning_curves.png plots for every GAN (configs/{mnist,celeba}_dcgan.py).
GAN_CURVE_METRICS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")


def _generator_input_width(objective, config) -> int:
  """Rows of G's first dense kernel, from an abstract init (no compute)."""
  def init(rng):
    cond = objective.draw_conditioning(rng, 2)
    images = jnp.zeros((2, *config.model.image_shape))
    return objective.model.init(rng, cond["noise"], images, cond["labels"], cond["codes"],
                                cond["continuous"], train=False)
  params = jax.eval_shape(init, jax.random.PRNGKey(0))["params"]["generator"]
  return params["Dense_0"]["kernel"].shape[0]


@pytest.mark.parametrize("smoke", [False, True], ids=["full", "smoke"])
@pytest.mark.parametrize("name,arg,noise_dim,conditioning", GAN_VARIANTS,
                         ids=[f"{v[0]}:{v[1]}" for v in GAN_VARIANTS])
def test_gan_config_variants_keep_their_invariants(name, arg, noise_dim, conditioning, smoke):
  config = load_config(name, ",".join(filter(None, [arg, "smoke" if smoke else ""])) or None)
  config_lib.validate(config)
  head = name.split("_")[1]
  # The objective checks the head against the model's classes and codes.
  objective = objectives.get_objective(config)
  assert config.objective.auxiliary == {"dcgan": "none", "acgan": "acgan",
                                        "infogan": "infogan"}[head]
  assert config.data.preprocessing == "symmetric"  # The generator ends in tanh.
  model = config.model
  assert model.noise_dim == (8 if smoke else noise_dim)
  assert _generator_input_width(objective, config) == model.noise_dim + conditioning
  if name.startswith("celeba"):
    assert tuple(model.image_shape) == (config.data.image_size, config.data.image_size, 3)
    assert (config.data.name, config.data.center_crop) == (
        ("celeb_a", None if smoke else 140) if "source=catalog" in arg
        else ("celeba_folder", None))
    # Only the AC-GAN is labelled: a boolean attribute gives 2 classes.
    if head == "acgan":
      attribute = "Male" if "attribute=Male" in arg else "Smiling"
      assert (config.data.label_attribute, model.num_classes) == (attribute, 2)
    else:
      assert config.data.label_attribute is None
  else:
    assert tuple(model.image_shape) == (28, 28, 1) and config.data.name == "mnist_5k"
    assert model.num_classes == (10 if head == "acgan" else 0)  # mnist_5k's digit labels.
  if "steps=" in arg and not smoke:
    assert config.train.num_steps == int(arg.split("steps=")[1].split(",")[0])
  # The learning curves add the head's accuracy.
  extra = {"dcgan": (), "acgan": ("aux_acc_real",), "infogan": ("info_acc",)}[head]
  assert tuple(config.train.curve_metrics) == GAN_CURVE_METRICS + extra
  if smoke:  # Each curve is a metric the train step emits (traced abstractly, no compute).
    n = config.data.batch_size
    batch = {"image": jnp.zeros((n, *model.image_shape)), "label": jnp.zeros(n, jnp.int32)}
    state = jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), batch)
    _, metrics = jax.eval_shape(objective.train_step, state, batch, jax.random.PRNGKey(1))
    assert set(config.train.curve_metrics) <= set(metrics)
    # The run's report explains every metric (eval emits the same names).
    assert set(metrics) <= set(reporting.METRIC_DOCS), set(metrics) - set(reporting.METRIC_DOCS)


def test_celeba_gan_configs_reject_an_unknown_source():
  for name in ("celeba_dcgan", "celeba_acgan", "celeba_infogan"):
    with pytest.raises(ValueError, match=r"Unknown CelebA source 'tfds' \(config argument "
                                         r"source=tfds\); known: folder, catalog"):
      load_config(name, "source=tfds")


@pytest.mark.parametrize("name", sorted(os.path.basename(p)[:-3] for p in
                                        glob.glob(os.path.join(REPO, "configs", "*.py"))))
def test_declared_metric_names_are_what_the_steps_return(name):
  """Traced abstractly (no compute): train.curve_metrics is checked against these."""
  config = load_config(name, "smoke")
  objective = objectives.get_objective(config)
  n = config.data.batch_size
  batch = {"image": jnp.zeros((n, *config.model.image_shape)), "label": jnp.zeros(n, jnp.int32),
           "mask": jnp.ones(n)}
  rng = jax.random.PRNGKey(0)
  state = jax.eval_shape(objective.init_state, rng, batch)
  _, train_metrics = jax.eval_shape(objective.train_step, state, batch, rng)
  eval_metrics = jax.eval_shape(objective.eval_step, state, batch, rng)
  assert objective.metric_names() == set(train_metrics) | set(eval_metrics)


# --- Optional fields: one default each ----------------------------------------


def test_with_defaults_fills_missing_fields_and_leaves_the_config_as_written():
  data = ml_collections.ConfigDict({"name": "mnist_5k", "preprocessing": "symmetric"})
  filled = config_lib.with_defaults(data, "data")
  assert filled.preprocessing == "symmetric"  # Set fields win.
  assert filled.eval_split == config_lib.SECTION_DEFAULTS["data"]["eval_split"] == "test"
  assert "eval_split" not in data  # What the workdir records is what the user wrote.


def test_jaxgen_reads_no_config_field_with_a_default_of_its_own():
  """Every optional field's default lives in SECTION_DEFAULTS or a family's FIELD_DEFAULTS."""
  import pathlib
  import re
  root = pathlib.Path(config_lib.__file__).parent
  pattern = re.compile(r"(config|data|optimizer|objective|train|opt|obj)\w*\.get\(")
  offenders = [f"{path.relative_to(root)}:{n}: {line.strip()}"
               for path in sorted(root.rglob("*.py"))
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if pattern.search(line)]
  assert not offenders, "\n".join(offenders)
