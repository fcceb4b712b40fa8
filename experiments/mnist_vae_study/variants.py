"""The MNIST study's retrained variants: like-for-like likelihoods, and the initialisation.

The main table trains every VAE with a Bernoulli decoder of grey levels, whose negative
ELBO is a cross-entropy: it ranks the VAEs but is not a likelihood of the data, so it can
stand neither beside the Gaussian baseline nor beside published numbers. Here each VAE is
retrained as a density of one fixed version of the data and scored in that data's unit:

  8-bit digits (bits/dim): a discretized logistic per pixel (`likelihood=logistic`), a
    distribution over the 256 grey levels, beside the Gaussian baselines' uniformly
    dequantized NLL. Both are upper bounds on -log P(x) of the 8-bit image.
  binarized digits (nats): a Bernoulli decoder on dynamically binarized training digits,
    tested on one fixed binarization (`protocol=binarized`), the literature's protocol.

VAE NLLs are IWAE-k bounds (Burda et al., 2016) with their standard errors over the
test images. The initialisation rows retrain A/B/C with PyTorch's default initialisation
(`init=torch`) to show how much of a comparison with a PyTorch original it decides.
"""

import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxgen import data as data_lib
from jaxgen import losses
from jaxgen import reporting
from jaxgen.evaluation import likelihood
from jaxgen.evaluation import progress

# Variant name -> the configs/mnist_vae.py argument that retrains a VAE that way.
DENSITY_VARIANTS = {"8bit": "likelihood=logistic", "binarized": "protocol=binarized"}
INIT_VARIANT = "init=torch"
# IWAE k of the density tables: quick mode keeps the study short; full mode uses the
# literature's k.
IWAE_K = {"quick": 100, "full": 5000}

# config spec for one VAE name and variant arguments -> the study's config.
MakeConfig = Callable[[str, str], ml_collections.ConfigDict]


def train_variants(workdir: str, vaes: Sequence[str], variants: Mapping[str, str],
                   make_config: MakeConfig, counter: Callable[[], str]) -> dict[str, dict]:
  """Trains (or reuses) every VAE under every variant into DIR/vae_<name>_<variant>.

  Returns:
    {variant: {name: (TrainResult, config)}}.
  """
  runs: dict[str, dict] = {variant: {} for variant in variants}
  for variant, argument in variants.items():
    for name in vaes:
      config = make_config(name, argument)
      trained = common.train_or_reuse(
          config, os.path.join(workdir, f"vae_{name}_{variant}"),
          f"{counter()} VAE {name}, {argument}: {config.train.num_steps} steps")
      runs[variant][name] = (trained.result, config)
  return runs


def per_example_metric(objective: Any, state: Any, data_config: ml_collections.ConfigDict,
                       metric: str, seed: int = 0) -> np.ndarray:
  """`metric` of the objective's eval step for every test image (padding dropped)."""
  step = jax.jit(objective.eval_step)
  values = []
  for i, batch in enumerate(data_lib.make_eval_batches(data_config)):
    out = step(state, {"image": jnp.asarray(batch["image"])},
               jax.random.fold_in(jax.random.PRNGKey(seed), i))
    keep = np.asarray(batch["mask"]) > 0
    values.append(np.asarray(jax.device_get(out[metric]), np.float64)[keep])
  return np.concatenate(values)


def gaussian_density(result: Any, config: ml_collections.ConfigDict) -> dict[str, float]:
  """A Gaussian baseline's dequantized test NLL: mean and standard error, nats and bits/dim."""
  values = per_example_metric(result.objective, result.state, config.data,
                              "dequantized_nll_nats")
  return _with_bits(*likelihood.mean_and_stderr(values), _num_dims(config))


def vae_density(result: Any, config: ml_collections.ConfigDict, iwae_k: int
                ) -> dict[str, float]:
  """A VAE's test -ELBO and IWAE-k NLL bound, each with its standard error (nats and,
  where the decoder is a likelihood of the data, bits/dim)."""
  report = likelihood.likelihood_report(
      result.objective, result.state, data_lib.make_eval_batches(config.data),
      jax.random.PRNGKey(config.seed), (iwae_k,),
      num_batches=progress.num_eval_batches(config.data, config.data.eval_split))
  bounds = report["bounds"]
  out = {}
  for key, bound in (("elbo", bounds["elbo_nats"]), ("nll", bounds[f"iwae_{iwae_k}_nats"])):
    out[f"{key}_nats"], out[f"{key}_stderr_nats"] = bound["negative_nats"], bound["nats_stderr"]
    if "bits_per_dim" in bound:
      out[f"{key}_bits_per_dim"] = bound["bits_per_dim"]
      out[f"{key}_stderr_bits_per_dim"] = bound["bits_per_dim_stderr"]
  out["kl_nats"] = bounds["kl_nats"]["nats"]
  return out


def negative_elbo(result: Any, config: ml_collections.ConfigDict) -> dict[str, float]:
  """A VAE's test negative ELBO (nats) with its standard error."""
  values = -per_example_metric(result.objective, result.state, config.data, "elbo_nats",
                               config.seed)
  mean, stderr = likelihood.mean_and_stderr(values)
  return {"neg_elbo_nats": mean, "neg_elbo_stderr_nats": stderr}


def _num_dims(config: ml_collections.ConfigDict) -> int:
  return int(np.prod(config.model.image_shape))


def _with_bits(nats: float, stderr: float, num_dims: int) -> dict[str, float]:
  to_bits = lambda x: float(losses.bits_per_dim(np.float64(x), num_dims))
  return {"nll_nats": nats, "nll_stderr_nats": stderr, "nll_bits_per_dim": to_bits(nats),
          "nll_stderr_bits_per_dim": to_bits(stderr)}


# ------------------------------------------------------------------ report
_GAUSSIAN_LABELS = {"ledoit_wolf": "Ledoit-Wolf", "eps": "+eps I", "none": "no regularisation"}


def _pm(mean: float, stderr: float, digits: int) -> str:
  return f"{mean:.{digits}f} ± {stderr:.{digits}f}"


def eight_bit_table(gaussians: Mapping[str, dict], vaes: Mapping[str, dict],
                    iwae_k: int) -> str:
  """8-bit digits: Gaussian dequantized NLLs and logistic-decoder VAEs' IWAE-k, bits/dim."""
  rows = [[f"Gaussian, {_GAUSSIAN_LABELS[g['covariance']]}", "uniform dequantization",
           _pm(g["density"]["nll_bits_per_dim"], g["density"]["nll_stderr_bits_per_dim"], 3),
           "-", _pm(g["density"]["nll_nats"], g["density"]["nll_stderr_nats"], 1)]
          for g in gaussians.values()]
  rows += [[f"VAE {name}, discretized logistic", f"IWAE-{iwae_k}",
            _pm(v["nll_bits_per_dim"], v["nll_stderr_bits_per_dim"], 3),
            _pm(v["elbo_bits_per_dim"], v["elbo_stderr_bits_per_dim"], 3),
            _pm(v["nll_nats"], v["nll_stderr_nats"], 1)] for name, v in vaes.items()]
  rows.append(["uniform over the 256 levels", "exact", "8.000", "-",
               f"{784 * np.log(256):.1f}"])
  return reporting.markdown_table(rows, ["model", "bound", "test NLL (bits/dim)",
                                         "test -ELBO (bits/dim)", "test NLL (nats)"])


def binarized_table(vaes: Mapping[str, dict], iwae_k: int) -> str:
  """Binarized digits: Bernoulli VAEs' IWAE-k NLL and -ELBO, nats."""
  rows = [[f"VAE {name}, Bernoulli", _pm(v["nll_nats"], v["nll_stderr_nats"], 2),
           _pm(v["elbo_nats"], v["elbo_stderr_nats"], 2), f"{v['kl_nats']:.2f}"]
          for name, v in vaes.items()]
  rows.append(["uniform over {0, 1}", f"{784 * np.log(2):.2f}", "-", "-"])
  return reporting.markdown_table(rows, [
      "model", f"test NLL, IWAE-{iwae_k} (nats)", "test -ELBO (nats)", "KL (nats)"])


def init_table(default: Mapping[str, dict], torch_init: Mapping[str, dict]) -> str:
  """Test -ELBO of each VAE under the default and PyTorch's initialisation."""
  rows = []
  for name, v in torch_init.items():
    d = default[name]
    rows.append([f"VAE {name}", _pm(d["neg_elbo_nats"], d["neg_elbo_stderr_nats"], 2),
                 _pm(v["neg_elbo_nats"], v["neg_elbo_stderr_nats"], 2),
                 f"{v['neg_elbo_nats'] - d['neg_elbo_nats']:+.2f}"])
  return reporting.markdown_table(rows, [
      "model", "test -ELBO, flax init (nats)", "test -ELBO, init=torch (nats)",
      "torch - flax (nats)"])


def report_lines(gaussians: Mapping[str, dict], densities: Mapping[str, Mapping[str, dict]],
                 inits: Mapping[str, Mapping[str, dict]], iwae_k: int,
                 published: Sequence[tuple[str, float, str]], data: str) -> list[str]:
  """The report's sections for the density tables and the initialisation comparison."""
  lines = []
  if densities.get("8bit") or gaussians:
    lines += ["## Likelihoods of the same data, in the same unit", "",
              "### 8-bit digits, bits/dim", "",
              eight_bit_table(gaussians, densities.get("8bit", {}), iwae_k), "",
              "Every number is an upper bound on the test negative log-likelihood of the "
              "8-bit images, ± its standard error over the test images. Gaussian: the "
              "uniform-dequantization bound of the fitted density. VAE: the IWAE-"
              f"{iwae_k} bound of a VAE retrained with a discretized logistic per pixel "
              "(`configs/mnist_vae.py:likelihood=logistic`). Lower is better.", ""]
  if densities.get("binarized"):
    lines += ["### Binarized digits, nats", "",
              binarized_table(densities["binarized"], iwae_k), "",
              "VAEs retrained on dynamically binarized training digits and tested on one "
              "fixed binarization of the test split (`configs/mnist_vae.py:"
              "protocol=binarized`), the protocol of the literature, whose numbers use "
              "IWAE k = 5000 on full MNIST:", ""]
    lines += [f"- {nats:.2f} nats: {what} ({source})" for what, nats, source in published]
    if data != "mnist":
      lines += [f"- This study's `{data}` has 4,500 training digits (MNIST 60,000) and a "
                "short schedule, so its NLLs are higher."]
    lines += [""]
  if inits.get("torch"):
    lines += ["## Initialisation", "", init_table(inits["default"], inits["torch"]), "",
              "The same VAEs, data and schedule with PyTorch's default initialisation "
              "(`model.init='torch'`: uniform weights and biases, bound 1/sqrt(fan-in)) "
              "instead of Flax's (LeCun-normal weights, zero biases); a PyTorch original "
              "is matched with `init=torch`.", ""]
  return lines
