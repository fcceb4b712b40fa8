"""Config conventions: variant arguments, required fields, every config file loads."""

import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from helpers import REPO, load_config
from jaxgen import config_builders
from jaxgen import config_lib
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


def test_validate_names_missing_and_bad_fields():
  config = load_config("mnist_vae")
  del config.train["checkpoint_every"]
  with pytest.raises(ValueError, match=r"missing required field\(s\): train.checkpoint_every"):
    config_lib.validate(config)
  config = load_config("mnist_vae")
  config.data.batch_size = 0
  with pytest.raises(ValueError, match=r"data.batch_size must be a positive integer"):
    config_lib.validate(config)


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
  assert tuple(config.train.curve_metrics) == config_builders.GAN_CURVE_METRICS + extra
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
