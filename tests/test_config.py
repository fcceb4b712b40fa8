"""Config conventions: variant arguments, required fields, every config file loads."""

import glob
import os

import ml_collections
import pytest

from helpers import REPO, load_config
from jaxgen import config_lib


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
  assert (b.model.decoder_kernel_size, b.model.decoder_padding, b.model.output_padding) == (5, 2, 1)
  assert (c.model.kernel_size, c.model.latent_dim) == (3, 10)
  assert mlp.model.name == "mlp_vae" and tuple(mlp.model.hidden_sizes) == (512, 256)
  assert load_config("mnist_vae", "latent=10").model.latent_dim == 10
  assert isinstance(a, ml_collections.ConfigDict) and a.data.name == "mnist_5k"
