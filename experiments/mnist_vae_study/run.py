r"""MNIST study: the Gaussian baseline and conv VAEs A/B/C (and the MLP VAE) side by side.

  python experiments/mnist_vae_study/run.py --workdir=runs/mnist_vae_study --quick
  python experiments/mnist_vae_study/run.py --workdir=runs/mnist_vae_study_full

--quick: 5,000 real MNIST digits (`mnist_5k`, offline) and 1,500 steps per VAE (the
configs' defaults), 15 VAE trainings with the density and initialisation variants: 61
minutes on 2 cores shared with other jobs (about half that idle; --density_vaes= and
--init_vaes= leave the variants out). Without it: the paper-length schedule (100 epochs per VAE,
`configs/mnist_vae.py:full`) on full MNIST, which must be prepared first (see README);
`--config.data.<field>=...` (name, data_dir, manual_dir, download) applies to every run,
e.g. `--config.data.data_dir=/data/tfds`.

Runs train through `jaxgen.train.train_and_evaluate` into DIR/<run> (a rerun reuses
finished runs); the analyses (`analysis.py` here, `jaxgen.evaluation.latents`) write
DIR/figures, DIR/report.md and the numbers as DIR/results.json.
"""

import itertools
import os
import sys
import time
from typing import Callable, Mapping, Sequence

from absl import flags
import ml_collections
from ml_collections import config_dict
from ml_collections import config_flags
import numpy as np

# `python experiments/<study>/run.py` puts only this folder on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments import common  # noqa: E402
from experiments.mnist_vae_study import analysis as va  # noqa: E402
from experiments.mnist_vae_study import variants  # noqa: E402
from jaxgen import data as data_lib  # noqa: E402
from jaxgen import evaluate  # noqa: E402
from jaxgen import reporting  # noqa: E402
from jaxgen import value_range  # noqa: E402
from jaxgen import workdir as workdir_lib  # noqa: E402
from jaxgen.evaluation import baselines  # noqa: E402
from jaxgen.evaluation import examples  # noqa: E402
from jaxgen.evaluation import latents  # noqa: E402
from jaxgen.evaluation import plots  # noqa: E402

# (run name, config spec). VAE steps: quick mode / full mode (`full` config variant).
GAUSSIANS = (("gaussian_ledoit_wolf", "mnist_gaussian:cov=ledoit_wolf"),
             ("gaussian_eps", "mnist_gaussian:cov=eps"),
             ("gaussian_none", "mnist_gaussian:cov=none"))
VAES = ("A", "B", "C", "mlp")
# VAEs retrained as densities of 8-bit and of binarized digits, and with PyTorch's init.
DENSITY_VAES = VAES
INIT_VAES = ("A", "B", "C")
QUICK_STEPS = {"A": 1500, "B": 1500, "C": 1500, "mlp": 1500}  # as configs/mnist_vae.py
INTERPOLATION_DIGITS = (0, 9)
NUM_FIGURE_IMAGES = 16


def data_fields() -> ml_collections.ConfigDict:
  """Data fields applied to every run; name None = mnist_5k (quick) or mnist (full)."""
  return ml_collections.ConfigDict({
      "name": config_dict.placeholder(str), "data_dir": config_dict.placeholder(str),
      "manual_dir": config_dict.placeholder(str), "download": False})


def vae_spec(name: str, quick: bool, variant: str = "") -> str:
  """The configs/mnist_vae.py spec of VAE `name` with a variant argument, in this mode."""
  return ",".join(filter(None, [f"mnist_vae:model={name}", variant, "" if quick else "full"]))


def make_config(spec: str, data: ml_collections.ConfigDict, quick: bool,
                steps: int | None = None) -> ml_collections.ConfigDict:
  """configs/<spec> with the study's data fields and, if given, a shorter schedule."""
  config = common.load_config(spec)
  config.data.name = data.name or ("mnist_5k" if quick else "mnist")
  for field in ("data_dir", "manual_dir", "download"):
    config.data[field] = data[field]
  if steps is not None:
    config.train.num_steps = steps
    config.train.eval_every = config.train.checkpoint_every = max(steps, 1)
  return config


def run_study(workdir: str, *, quick: bool, data: ml_collections.ConfigDict | None = None,
              vaes: Sequence[str] = VAES, gaussians: Sequence[tuple[str, str]] = GAUSSIANS,
              density_vaes: Sequence[str] = DENSITY_VAES,
              init_vaes: Sequence[str] = INIT_VAES, iwae_k: int | None = None,
              steps: Mapping[str, int] | None = None, index_a: int | None = None,
              index_b: int | None = None, kl_samples: int = 10_000,
              manifold_size: int = 20) -> str:
  """Trains (or reuses) every run, analyses them and writes report.md; returns its path.

  Args:
    workdir: the study's directory.
    quick: mnist_5k (unless `data.name` says otherwise) and QUICK_STEPS.
    data: data fields for every run (name, data_dir, manual_dir, download).
    vaes: VAE variants of configs/mnist_vae.py.
    gaussians: (run name, config spec) of the Gaussian baselines.
    density_vaes: VAEs retrained as densities of 8-bit and of binarized digits.
    init_vaes: VAEs (among `vaes`) retrained with PyTorch's initialisation.
    iwae_k: k of the density tables' IWAE bounds (default `variants.IWAE_K` by mode).
    steps: VAE steps per model name, for every variant (default QUICK_STEPS, or the
      `full` schedule).
    index_a, index_b: test indices to interpolate between (default the first 0 and 9).
    kl_samples: Monte Carlo samples of the aggregate KL.
    manifold_size: grid size of the 2-D latent manifolds.

  Raises:
    ValueError: an interpolation index outside the test split (before any training).
  """
  workdir = os.path.abspath(workdir)
  data = data or data_fields()
  steps = steps or (QUICK_STEPS if quick else {})
  variant_config = lambda name, variant: make_config(vae_spec(name, quick, variant), data,
                                                    quick, steps.get(name))
  vae_configs = {name: variant_config(name, "") for name in vaes}
  init_vaes = [name for name in init_vaes if name in vaes]  # Compared with the main runs.
  first = next(iter(vae_configs.values()))
  _check_indices(first.data, index_a, index_b)
  start = time.perf_counter()
  timings: dict[str, float] = {}
  counter = _run_counter(len(gaussians) + len(vae_configs)
                         + len(density_vaes) * len(variants.DENSITY_VARIANTS) + len(init_vaes))
  gaussian_results = _fit_gaussians(workdir, gaussians, data, quick, counter, timings)
  results: dict[str, dict] = {}
  mean = baselines.mean_image(first.data, first.data.train_split)  # Same data for every VAE.
  for name, config in vae_configs.items():
    t0 = time.perf_counter()
    result, encoded = _train_and_encode(
        workdir, name, config, f"{counter()} VAE {name}: {config.train.num_steps} "
        f"steps on {config.data.name}, then analyses")
    index_a, index_b = _interpolation_pair(encoded.labels, index_a, index_b)
    figure_indices = examples.spread_indices(len(encoded.mu), NUM_FIGURE_IMAGES)
    results[name] = _analyse_vae(name, result, config, encoded, workdir,
                                 figure_indices, (index_a, index_b), kl_samples, manifold_size)
    results[name].update(_against_references(result, config, encoded, mean),
                         test_elbo=variants.negative_elbo(result, config))
    timings[f"vae_{name}"] = time.perf_counter() - t0
  iwae_k = iwae_k or variants.IWAE_K["quick" if quick else "full"]
  scored = _retrain_variants(workdir, density_vaes, init_vaes, results, variant_config,
                             counter, iwae_k, timings)
  common.say("cross-model figures and report")
  # Every model saw the same split in the same order.
  _cross_model_figures(workdir, value_range.of_data(first.data).to_unit(encoded.images),
                       results, figure_indices, index_a, index_b)
  total = time.perf_counter() - start
  path = write_report(workdir, quick, gaussian_results, results, timings, total,
                      dict(figure_indices=figure_indices, index_a=index_a, index_b=index_b,
                           data=first.data.name, iwae_k=iwae_k, **scored))
  common.say(f"done in {total / 60:.1f} min: {path}")
  return path


def _run_counter(total: int) -> Callable[[], str]:
  """A function that returns "[i/total]" for the i-th run it is called for."""
  count = itertools.count(1)
  return lambda: f"[{next(count)}/{total}]"


def _retrain_variants(workdir: str, density_vaes: Sequence[str], init_vaes: Sequence[str],
                      results: Mapping[str, dict], variant_config: variants.MakeConfig,
                      counter: Callable[[], str], iwae_k: int,
                      timings: dict[str, float]) -> dict[str, dict]:
  """Trains (or reuses) the density and initialisation variants and scores them.

  Returns:
    {"densities": {variant: {name: numbers}}, "inits": {"default"|"torch": {name: ...}}}.
  """
  t0 = time.perf_counter()
  runs = variants.train_variants(workdir, density_vaes, variants.DENSITY_VARIANTS,
                                 variant_config, counter)
  densities = {variant: {name: variants.vae_density(result, config, iwae_k)
                         for name, (result, config) in by_name.items()}
               for variant, by_name in runs.items()}
  timings["density_variants"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  runs = variants.train_variants(workdir, init_vaes, {"torch": variants.INIT_VARIANT},
                                 variant_config, counter)["torch"]
  inits = {"default": {name: results[name]["test_elbo"] for name in init_vaes},
           "torch": {name: variants.negative_elbo(result, config)
                     for name, (result, config) in runs.items()}}
  timings["init_variants"] = time.perf_counter() - t0
  return {"densities": densities, "inits": inits}


def _check_indices(data_config: ml_collections.ConfigDict, index_a: int | None,
                   index_b: int | None) -> None:
  """Fails on an interpolation index outside the test split (before any training)."""
  num_test = data_lib.get_dataset_info(data_config).num_examples[data_config.eval_split]
  for name, index in (("index_a", index_a), ("index_b", index_b)):
    if index is not None:
      latents.check_index(index, num_test, f"--{name}")


def _fit_gaussians(workdir: str, gaussians: Sequence[tuple[str, str]],
                   data: ml_collections.ConfigDict, quick: bool, counter: Callable[[], str],
                   timings: dict[str, float]) -> dict[str, dict]:
  """Fits (or reuses) every Gaussian baseline; adds their seconds to `timings`."""
  gaussian_results = {}
  for name, spec in gaussians:
    config = make_config(spec, data, quick)
    trained = common.train_or_reuse(config, os.path.join(workdir, name),
                                    f"{counter()} {name}: closed-form fit")
    timings[name] = trained.seconds
    gaussian_results[name] = {**_gaussian_numbers(trained.result),
                              "density": variants.gaussian_density(trained.result, config)}
  return gaussian_results


def _train_and_encode(workdir: str, name: str, config: ml_collections.ConfigDict,
                      label: str):
  """Trains (or reuses) one VAE; returns its result and its encoded test split with images."""
  trained = common.train_or_reuse(config, os.path.join(workdir, f"vae_{name}"), label)
  encoded = latents.encode_split(trained.result.objective, trained.result.state,
                                 data_lib.make_eval_batches(config.data), keep_images=True)
  return trained.result, encoded


def _interpolation_pair(labels, index_a: int | None, index_b: int | None) -> tuple[int, int]:
  """The given indices; a missing one is the first test image of its INTERPOLATION_DIGITS."""
  if index_a is None:
    index_a = va.first_index_of_label(labels, INTERPOLATION_DIGITS[0])
  if index_b is None:
    index_b = va.first_index_of_label(labels, INTERPOLATION_DIGITS[1])
  return index_a, index_b


def _gaussian_numbers(result) -> dict:
  """The report's numbers of a fitted Gaussian baseline."""
  return {"params": result.objective.num_params(result.state),
          "shrinkage": float(result.state.model_state["shrinkage"]),
          "covariance": result.objective.covariance_kind, "eps": result.objective.eps,
          **result.eval_metrics}


def _analyse_vae(name, result, config, encoded, workdir, figure_indices, pair, kl_samples,
                 manifold_size) -> dict:
  """Numbers and figures of one trained VAE (see `analysis.analyze_vae`)."""
  analysis = va.analyze_vae(
      result.objective, result.state, encoded,
      os.path.join(workdir, "figures"), name, figure_indices=figure_indices,
      interpolation_pair=pair, seed=config.seed, kl_samples=kl_samples,
      manifold_size=manifold_size)
  analysis.update(
      warnings=va.build_warnings(result.objective, config.model.image_shape),
      params=result.objective.num_params(result.state), metrics=result.eval_metrics,
      latent_dim=result.objective.latent_dim, steps=config.train.num_steps)
  for warning in analysis["warnings"]:
    common.say(f"  model {name} build warning: {warning}")
  return analysis


def _against_references(result, config, encoded, mean: np.ndarray) -> dict:
  """The mean-image and perfect-reconstruction NLLs, active units, overfitting check."""
  references = baselines.reference_nlls(result.objective, result.state,
                                        data_lib.make_eval_batches(config.data), mean)
  return {**references,
          "gap_to_mean_image_nats": (references["mean_image_nll_nats"]
                                     + result.eval_metrics["elbo_nats"]),
          "active_units": latents.active_units(encoded.mu)[0],
          "overfitting": baselines.overfitting(workdir_lib.read_metrics(result.workdir))}


def _cross_model_figures(workdir: str, real: np.ndarray, results: Mapping[str, dict],
                         figure_indices: Sequence[int], index_a: int, index_b: int) -> None:
  """Reconstructions and interpolations of every model, side by side."""
  fig_dir = os.path.join(workdir, "figures")
  plots.save_labelled_rows(
      os.path.join(fig_dir, "reconstructions_side_by_side.png"),
      [("test images", real[figure_indices])]
      + [(f"model {k}", v["reconstructions"]) for k, v in results.items()],
      f"reconstructions of test images {', '.join(map(str, figure_indices))}")
  # The two test images above the first and last column of the paths (white between).
  num_path = len(next(iter(results.values()))["interpolations"]["linear"])
  gap = np.ones((num_path - 2,) + real.shape[1:], real.dtype)
  rows = [("test images", np.concatenate([real[[index_a]], gap, real[[index_b]]]))]
  for name, analysis in results.items():
    rows += [(f"{name} {method}", images) for method, images in analysis["interpolations"].items()]
  plots.save_labelled_rows(os.path.join(fig_dir, "interpolations.png"), rows,
                           f"latent interpolation from test image {index_a} to {index_b}")
  va.save_checkerboard_figure(os.path.join(fig_dir, "checkerboard.png"), real,
                              {name: v["samples"] for name, v in results.items()})


def _fmt(value: float, digits: int = 2) -> str:
  return f"{value:.{digits}f}"


def _results_table(vaes: Mapping[str, dict]) -> str:
  """The VAEs trained with a Bernoulli decoder of grey levels, and their analyses."""
  rows = []
  for name, v in vaes.items():
    rows.append([f"VAE {name} (latent {v['latent_dim']})", f"{v['params']:,}",
                 f"{v['steps']:,}",
                 f"{_fmt(v['test_elbo']['neg_elbo_nats'])} ± "
                 f"{_fmt(v['test_elbo']['neg_elbo_stderr_nats'])}",
                 _fmt(v["checkerboard_reconstructions"], 3), _fmt(v["checkerboard_samples"], 3),
                 f"{_fmt(v['aggregate_kl_mc_nats'])} ± {_fmt(v['aggregate_kl_mc_stderr_nats'])}",
                 _fmt(v["aggregate_kl_moment_matched_nats"]), _fmt(v["mean_kl_nats"]),
                 f"{_fmt(v['mean_image_nll_nats'])} ± {_fmt(v['mean_image_nll_stderr'])}",
                 _fmt(v["gap_to_mean_image_nats"]), _fmt(v["perfect_reconstruction_nll_nats"]),
                 f"{v['active_units']} / {v['latent_dim']}"])
  return reporting.markdown_table(rows, [
      "model", "parameters", "steps", "test -ELBO, grey-level cross-entropy (nats)",
      "checkerboard (recon.)", "checkerboard (prior samples)", "aggregate KL, MC (nats)",
      "aggregate KL, moment-matched (nats)", "mean per-example KL (nats)",
      "mean-image NLL (nats)", "gap to mean image (nats)", "perfect-recon. NLL (nats)",
      "active units"])


NOTES = [
    "- *mean-image NLL*: the test NLL (± standard error) under the same Bernoulli "
    "likelihood of a decoder that outputs the training mean image whatever the input, "
    "the best a model whose code carries nothing can do; *gap to mean image* is that NLL "
    "minus the model's test -ELBO (a few nats means the VAE learnt little). "
    "*perfect-recon. NLL*: the NLL when the decoder outputs each test image itself (the "
    "pixels' binary entropy on grey levels, 0 on binarized data), below which no "
    "reconstruction term can go. *active units*: latent dimensions whose posterior mean "
    "varies over the test set (variance > 0.01).",
    "- *test -ELBO, grey-level cross-entropy*: the negative ELBO of the test split (± its "
    "standard error over the images) with a Bernoulli decoder of the grey levels, the "
    "objective these VAEs train with. A Bernoulli of grey levels is a cross-entropy, not a "
    "distribution over the 256 levels, so this number ranks these VAEs against each other "
    "but is no likelihood of the data: the tables under *Likelihoods of the same data* "
    "retrain each VAE as a density of 8-bit or of binarized digits for that.",
    "- *checkerboard*: the share of the 2-D power spectrum at and within one frequency "
    "bin of the Nyquist frequencies (1/2, 0), (0, 1/2), (1/2, 1/2) cycles/pixel, divided "
    "by the same share on the real test images: 1.0 = like the data; above 1, periodic "
    "artifacts; below 1, smoother than the data. *recon.*: decoder means at the "
    "posterior mean of every test image; *prior samples*: decoder means of z ~ N(0, I). "
    "Kernels that overlap unevenly (B and C: 3 at stride 2) can produce such a pattern; "
    "training can also learn kernels that cancel it, so the score shows what is left.",
    "- *aggregate KL*: KL(q(z) || p(z)) for q(z) = 1/N sum_i q(z|x_i) over the N test "
    "images. *MC*: Monte Carlo with z drawn from the mixture and scored with the exact "
    "mixture density (± standard error). *Moment-matched*: the closed-form KL of the "
    "Gaussian with q's mean and covariance. As log p(z) is quadratic, KL(q||p) = "
    "KL(N_q||p) + KL(q||N_q), so the moment-matched value is a lower bound, short by how "
    "non-Gaussian q is (clusters, holes). The *mean per-example KL* (the ELBO's KL term) "
    "equals KL(q||p) + I(x; z), an upper bound, above it by the information the code "
    "carries about which image it came from (at most log N).",
]


def write_report(workdir: str, quick: bool, gaussians: Mapping[str, dict],
                 vaes: Mapping[str, dict], timings: Mapping[str, float], total: float,
                 info: Mapping) -> str:
  """report.md: the table, how to read it, and every figure."""
  lines = ["# MNIST study: Gaussian baseline and VAEs " + ", ".join(vaes), "",
           f"Mode: {'quick' if quick else 'full'}; data: `{info['data']}`, every number on "
           f"its test split. This invocation took {total / 60:.1f} min (reused finished "
           f"runs take seconds).", "",
           f"    python experiments/mnist_vae_study/run.py --workdir=DIR"
           f"{' --quick' if quick else ''}", "", "## Results", "",
           _results_table(vaes), ""]
  lines += _checkerboard_lines(vaes) + _reference_warnings(vaes)
  lines += ["How to read the columns:", "", *NOTES, "",
            "Build-time warnings (a ConvTranspose kernel not divisible by its stride):", ""]
  lines += [f"- model {k}: {'; '.join(v['warnings'])}" for k, v in vaes.items()
            if v["warnings"]] or ["- none"]
  lines += ["", "Prior samples of each model enlarged 6x with nearest pixels, and the mean "
            "power spectrum of every sample with the Nyquist bins the score counts "
            "outlined:", "", "![checkerboard](figures/checkerboard.png)", ""]
  lines += variants.report_lines(
      gaussians, info["densities"], info["inits"], info["iwae_k"],
      evaluate.PROTOCOLS["binarized"]["published"], info["data"])
  lines += ["## Reconstructions", "",
            f"Fixed test images {', '.join(map(str, info['figure_indices']))} (evenly "
            f"spaced over the split, never shuffled); top row the originals.", "",
            "![reconstructions](figures/reconstructions_side_by_side.png)", "",
            "## Latent interpolation", "",
            f"From test image {info['index_a']} to test image {info['index_b']} (by default "
            f"the first {INTERPOLATION_DIGITS[0]} and the first {INTERPOLATION_DIGITS[1]} of "
            f"the split), between posterior means, along linear and spherical (slerp) "
            f"paths; the first row shows the two test images.", "",
            "![interpolations](figures/interpolations.png)", "",
            "## Per model: reconstructions next to prior samples; 2-D latent spaces", ""]
  lines += _per_model_lines(vaes)
  if gaussians:
    lines += _gaussian_lines(workdir, gaussians)
  lines += ["## Timing (this invocation)", "", reporting.markdown_table(
      [[k, f"{v:.0f}"] for k, v in timings.items()] + [["total", f"{total:.0f}"]],
      ["run (training or reuse, and analyses)", "seconds"]), ""]
  return common.write_report(workdir, lines, _numbers(gaussians, vaes, timings, total, info))


def _reference_warnings(vaes: Mapping[str, dict]) -> list[str]:
  """Warning lines for a model near the mean image, or one that overfits."""
  lines = []
  for name, v in vaes.items():
    if v["gap_to_mean_image_nats"] < baselines.MIN_GAP_NATS:
      gap = v["gap_to_mean_image_nats"]
      where = (f"only {_fmt(gap)} nats below" if gap >= 0 else f"{_fmt(-gap)} nats above")
      lines.append(f"- **Warning, model {name}**: its test negative ELBO is {where} the "
                   f"mean image's NLL: its code carries little about the input.")
    if v["overfitting"]:
      lines.append(f"- **Warning, model {name}**: {v['overfitting']}")
  return lines + [""] if lines else []


def _checkerboard_lines(vaes: Mapping[str, dict]) -> list[str]:
  """Model B's checkerboard scores against A's, if both ran."""
  if "A" not in vaes or "B" not in vaes:
    return []
  a, b = vaes["A"], vaes["B"]
  return [
      f"**Checkerboard artifacts**: model B's score is "
      f"{_fmt(b['checkerboard_reconstructions'], 3)} on reconstructions against A's "
      f"{_fmt(a['checkerboard_reconstructions'], 3)} "
      f"({b['checkerboard_reconstructions'] / a['checkerboard_reconstructions']:.2f}x), "
      f"and {_fmt(b['checkerboard_samples'], 3)} against "
      f"{_fmt(a['checkerboard_samples'], 3)} on prior samples "
      f"({b['checkerboard_samples'] / a['checkerboard_samples']:.2f}x).", ""]


def _per_model_lines(vaes: Mapping[str, dict]) -> list[str]:
  """Every VAE's figures and a link to its run report."""
  lines = []
  for name, v in vaes.items():
    lines += [f"### Model {name}", ""]
    for title, path in v["figures"].items():
      lines += [f"![{name} {title}](figures/{os.path.basename(path)})", ""]
    if v["latent_dim"] != 2:
      lines += [f"(Latent size {v['latent_dim']}: the manifold grid and the scatter need 2.)",
                ""]
    lines += [f"Run report: [vae_{name}/report.md](vae_{name}/report.md).", ""]
  return lines


def _gaussian_lines(workdir: str, gaussians: Mapping[str, dict]) -> list[str]:
  """The Gaussian baseline's section: how it was fitted and the first run's figures."""
  lines = ["## Gaussian baseline", "",
           "One full-covariance Gaussian over the 784 pixels, fitted in closed form from "
           "float64 moments streamed over the training split, regularised by Ledoit-Wolf "
           "shrinkage, by +eps I, or not at all (the dequantization noise alone keeps "
           "it invertible)."]
  for g in gaussians.values():
    if g["covariance"] == "ledoit_wolf":
      lines += [f"The Ledoit-Wolf shrinkage coefficient is {g['shrinkage']:.4f}."]
  first = next(iter(gaussians))
  lines += ["", f"Figures of `{first}`:", ""]
  for stem in ("mean", "covariance", "samples_full", "samples_temperature",
               "samples_diagonal", "samples_top_k"):
    if os.path.exists(os.path.join(workdir, first, "figures", f"{stem}.png")):
      lines += [f"![{stem}]({first}/figures/{stem}.png)", ""]
  return lines


def _numbers(gaussians: Mapping[str, dict], vaes: Mapping[str, dict],
             timings: Mapping[str, float], total: float, info: Mapping) -> dict:
  """The report's numbers for results.json."""
  return {"gaussians": gaussians, "vaes": {
      k: {**va.summary_row(v), "params": v["params"], "steps": v["steps"],
          "test_elbo": v["test_elbo"],
          **{f"eval/{m}": x for m, x in v["metrics"].items()}} for k, v in vaes.items()},
          "densities": info["densities"], "inits": info["inits"], "iwae_k": info["iwae_k"],
          "seconds": {**timings, "total": total}}


def main():
  common.define_study_flags("mnist_5k and 1,500 steps per VAE (15 trainings, about "
                            "30-60 min on 2 cores).")
  flags.DEFINE_integer("index_a", None, "Test index of the first interpolation end point "
                       "(default: the first 0 of the test split).")
  flags.DEFINE_integer("index_b", None, "Test index of the second end point (default: the "
                       "first 9).")
  flags.DEFINE_list("density_vaes", list(DENSITY_VAES), "VAEs retrained as densities of "
                    "8-bit and of binarized digits ('' for none).")
  flags.DEFINE_list("init_vaes", list(INIT_VAES), "VAEs retrained with PyTorch's "
                    "initialisation ('' for none).")
  flags.DEFINE_integer("iwae_k", None, "k of the density tables' IWAE bounds (default "
                       f"{variants.IWAE_K['quick']} with --quick, else "
                       f"{variants.IWAE_K['full']}).", lower_bound=1)
  config_flags.DEFINE_config_dict(
      "config", ml_collections.ConfigDict({"data": data_fields()}),
      "Data fields applied to every run, e.g. --config.data.name=mnist.")
  common.main(lambda cfg: run_study(
      cfg.workdir, quick=cfg.quick, data=cfg.config.data, index_a=cfg.index_a,
      index_b=cfg.index_b, density_vaes=_known_vaes(cfg.density_vaes, "--density_vaes"),
      init_vaes=_known_vaes(cfg.init_vaes, "--init_vaes"), iwae_k=cfg.iwae_k),
              quiet_logs=True)


def _known_vaes(names: Sequence[str], flag: str) -> list[str]:
  """`names` if each is a VAE of this study, else a ValueError naming `flag`."""
  unknown = [name for name in names if name not in VAES]
  if unknown:
    raise ValueError(f"{flag} names {', '.join(unknown)}, not VAEs of this study; known: "
                     f"{', '.join(VAES)} (comma separated, '' for none).")
  return list(names)


if __name__ == "__main__":
  main()
