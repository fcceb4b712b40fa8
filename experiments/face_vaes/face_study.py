"""The face VAE study (run.py next to this file): which data is there, the runs'
analyses, and the markdown they add to report.md.

Each `analyse_*` function takes a finished run (`train.TrainResult` and its config),
saves figures under `fig_dir` and returns (numbers, markdown lines). Paths in the
markdown are relative to `report_dir`.
"""

import copy
import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxgen import config_lib
from jaxgen import data as data_lib
from jaxgen import figures
from jaxgen import reporting
from jaxgen import train
from jaxgen import workdir as workdir_lib
from jaxgen.evaluation import baselines
from jaxgen.evaluation import examples
from jaxgen.evaluation import latent_edits
from jaxgen.evaluation import latents
from jaxgen.evaluation import plots


@dataclasses.dataclass
class Source:
  """Where a run's data comes from, or why it is skipped.

  Attributes:
    data: the `data` config to train on (None = skipped).
    label: how the report names the data.
    stand_in: True when the data is a stand-in (not the dataset of the study).
    skipped: why the real dataset was not used (None if it was).
  """
  data: ml_collections.ConfigDict | None
  label: str
  stand_in: bool = False
  skipped: str | None = None


def unavailable_reason(data_config: ml_collections.ConfigDict) -> str | None:
  """None if the dataset can be read (building it if its files are there), else why not.

  Never downloads: `data.download` is forced to False for the check.
  """
  probe = copy.deepcopy(data_config)
  probe.download = False
  try:
    data_lib.get_dataset_info(probe)
  except data_lib.DatasetNotPreparedError as e:
    # The first sentence names the dataset and what is missing; the rest is how to fix it.
    return str(e).split(". ")[0].splitlines()[0].rstrip(".") + "."
  return None


def whole_split_metrics(result: train.TrainResult, config: ml_collections.ConfigDict,
                        split: str | None = None) -> dict[str, float]:
  """The objective's eval metrics averaged over the whole split (no batch cap)."""
  full = copy.deepcopy(config)
  full.train.num_eval_batches = None
  return train.evaluate(result.objective, result.state, full, train.make_mesh(config),
                        jax.random.PRNGKey(config.seed + 1), split=split)


def spread_images(data_config: ml_collections.ConfigDict, num: int,
                  split: str | None = None, within: int = 1_000) -> np.ndarray:
  """`num` images at evenly spaced positions of (the first `within` examples of) a split."""
  return examples.spread_examples(data_config, num, split, within=within)[0]


def encode_codes(result: train.TrainResult, data_config: ml_collections.ConfigDict,
                 split: str | None = None, max_examples: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
  """(codes, labels or None) of a split: posterior means, or an autoencoder's codes."""
  encoded = latents.encode_split(result.objective, result.state,
                                 data_lib.make_eval_batches(data_config, split=split),
                                 max_examples)
  return encoded.mu.astype(np.float32), encoded.labels


def _rel(path: str, report_dir: str) -> str:
  return os.path.relpath(path, report_dir)


def _figure(lines: list[str], caption: str, path: str, report_dir: str) -> None:
  lines += [f"**{caption}**", "", f"![{caption}]({_rel(path, report_dir)})", ""]


def run_summary(result: train.TrainResult, config: ml_collections.ConfigDict,
                report_dir: str) -> tuple[dict[str, Any], list[str]]:
  """Steps, parameters, speed and the run's own figures (learning curves, samples)."""
  records = workdir_lib.read_metrics(result.workdir)
  speeds = [r["train/steps_per_sec"] for r in records if "train/steps_per_sec" in r]
  numbers = {"steps": int(jax.device_get(result.state.step)),
             "num_params": result.objective.num_params(result.state),
             "steps_per_sec": speeds[-1] if speeds else float("nan")}
  lines = [f"Run `{_rel(result.workdir, report_dir)}`: {numbers['steps']} steps of batch "
           f"{config.data.batch_size}, {numbers['num_params']:,} parameters, "
           f"{numbers['steps_per_sec']:.2f} steps/s on this machine (incl. eval).", ""]
  fig_dir = os.path.join(result.workdir, workdir_lib.FIGURES_DIR)
  _figure(lines, "Learning curves (each term on its own panel; train line, eval dots)",
          os.path.join(fig_dir, "learning_curves.png"), report_dir)
  return numbers, lines


def _metric_table(metrics: dict[str, float]) -> str:
  notes = dict(reporting.METRIC_DOCS)
  if "mse" in metrics:
    notes.update(METRIC_NOTES_MSE)
    if "kl_nats" not in metrics:
      notes["loss"] = "training objective: the MSE (no KL in an autoencoder)"
  return reporting.markdown_table(
      [[k, float(v), notes.get(k, "")] for k, v in sorted(metrics.items())],
      ["metric", "value", "meaning"])


METRIC_NOTES_MSE = {
    "mse": "mean over pixels of (x - x_hat)^2, x in [-1, 1] (squared [-1, 1] units)",
    "loss": "training objective: mse + lambda * kl_nats (lambda = objective.beta)",
}


def analyse_frey(result: train.TrainResult, config: ml_collections.ConfigDict,
                 fig_dir: str, report_dir: str) -> tuple[dict[str, Any], list[str]]:
  """Frey VAE: whole-split ELBO, reconstructions (originals first), samples, traversal."""
  numbers, lines = run_summary(result, config, report_dir)
  metrics = whole_split_metrics(result, config)
  numbers.update({f"test/{k}": v for k, v in metrics.items()})
  lines += [f"Test split, all {_split_size(config)} images:", "", _metric_table(metrics), ""]
  if "elbo_nats" in metrics:
    lines += [f"Test negative ELBO **{-metrics['elbo_nats']:.2f} nats** per image"
              + (f" ({metrics['bits_per_dim']:.4f} bits/dim)." if "bits_per_dim" in metrics
                 else " (a Bernoulli cross-entropy of grey levels, not bits/dim of a "
                      "likelihood)."), ""]
    lines += _reference_lines(result, config, metrics, numbers)
  rng = jax.random.PRNGKey(config.seed)
  images = spread_images(config.data, 8)
  grid = latent_edits.posterior_reconstruction_grid(result.objective, result.state, images,
                                                    rng, num_samples=4)
  path = figures.save_image_grid(os.path.join(fig_dir, "frey_reconstructions.png"), grid, 6,
                                 "original | mean reconstruction | 4 posterior samples")
  _figure(lines, "Reconstructions: originals in the first column, then the decoded "
          "posterior mean, then decodes of 4 samples z ~ q(z|x)", path, report_dir)
  samples = np.asarray(_sample(result, jax.random.fold_in(rng, 1), 32))
  path = figures.save_image_grid(os.path.join(fig_dir, "frey_samples.png"), samples, 8,
                                 "32 samples, z ~ N(0, I)")
  _figure(lines, "Samples", path, report_dir)
  if result.objective.latent_dim >= 2:
    traversal = latent_edits.latent_traversal_grid(result.objective, result.state, (0, 1), 12)
    path = figures.save_image_grid(os.path.join(fig_dir, "frey_latent_traversal.png"),
                                   traversal, 12, "z[0] down, z[1] across (normal quantiles "
                                   "5%..95%), other dims 0")
    _figure(lines, "Latent traversal over z[0] (rows) and z[1] (columns)", path, report_dir)
  return numbers, lines


def _reference_lines(result: train.TrainResult, config: ml_collections.ConfigDict,
                     metrics: dict[str, float], numbers: dict[str, Any]) -> list[str]:
  """The VAE against the mean-image and perfect-reconstruction decoders, with warnings
  when it barely beats the mean image or overfits (`jaxgen.evaluation.baselines`)."""
  data = config_lib.with_defaults(config.data, "data")
  mean = baselines.mean_image(config.data, data.train_split)
  refs = baselines.reference_nlls(result.objective, result.state,
                                  data_lib.make_eval_batches(config.data), mean)
  gap = refs["mean_image_nll_nats"] + metrics["elbo_nats"]
  active = latents.active_units(encode_codes(result, config.data)[0])[0]
  numbers.update({f"test/{k}": v for k, v in refs.items()})
  numbers.update({"test/gap_to_mean_image_nats": gap, "test/active_units": active})
  lines = [f"Reference decoders under the same likelihood: the training mean image for "
           f"every face scores {refs['mean_image_nll_nats']:.2f} ± "
           f"{refs['mean_image_nll_stderr']:.2f} nats, each face's own pixels "
           f"{refs['perfect_reconstruction_nll_nats']:.2f} nats. The VAE is **{gap:.2f} nats "
           f"below the mean image**, with KL {metrics.get('kl_nats', float('nan')):.2f} nats "
           f"and {active} of {result.objective.latent_dim} latent dimensions active.", ""]
  if gap < baselines.MIN_GAP_NATS:
    lines += [f"**Warning**: the VAE beats a constant image by less than "
              f"{baselines.MIN_GAP_NATS:g} nats: its code carries little about the face.", ""]
  return lines + _overfitting_lines(result)


def _overfitting_lines(result: train.TrainResult) -> list[str]:
  """A warning when the run's test loss rose while its training loss fell."""
  overfit = baselines.overfitting(workdir_lib.read_metrics(result.workdir))
  return [f"**Warning**: {overfit}", ""] if overfit else []


def _mse_reference_lines(result: train.TrainResult, config: ml_collections.ConfigDict,
                         metrics: dict[str, float], numbers: dict[str, Any]) -> list[str]:
  """An MSE model against the mean-image and perfect-reconstruction decoders (a table),
  with warnings when it is not clearly below the mean image or overfits."""
  data = config_lib.with_defaults(config.data, "data")
  mean = baselines.mean_image(config.data, data.train_split)
  refs = baselines.reference_mses(result.objective, result.state,
                                  data_lib.make_eval_batches(config.data), mean)
  ratio = metrics["mse"] / refs["mean_image_mse"]
  numbers.update({f"test/{k}": v for k, v in refs.items()})
  numbers["test/mse_ratio_to_mean_image"] = ratio
  rows = [["training mean image, for every face",
           f"{refs['mean_image_mse']:.5f} ± {refs['mean_image_mse_stderr']:.5f}"],
          ["this VAE: reconstruction of z ~ q(z\\|x)", f"{metrics['mse']:.5f}"],
          ["perfect reconstruction", f"{refs['perfect_reconstruction_mse']:g}"]]
  lines = [reporting.markdown_table(rows, ["decoder", "test MSE (squared [-1, 1] units)"]),
           "", f"The VAE's test MSE is **{ratio:.3f} of the mean image's**: its "
           f"reconstructions explain {100 * (1 - ratio):.1f}% of the test pixels' variance "
           f"about the training mean face (the mean image's MSE is that variance).", ""]
  if ratio > 1 - baselines.MIN_MSE_REDUCTION:
    lines += [f"**Warning**: the VAE's test MSE is less than "
              f"{100 * baselines.MIN_MSE_REDUCTION:g}% below the mean image's: its code "
              f"carries little about the face.", ""]
  return lines + _overfitting_lines(result)


def analyse_face_vae(result: train.TrainResult, config: ml_collections.ConfigDict,
                     fig_dir: str, report_dir: str, label_names: tuple[str, ...] | None,
                     max_tsne: int = 2_000, max_probe_train: int = 10_000
                     ) -> tuple[dict[str, Any], list[str]]:
  """CelebA VAE: whole-split MSE and KL against the mean face, 32 samples, t-SNE of test
  codes + linear probe."""
  numbers, lines = run_summary(result, config, report_dir)
  metrics = whole_split_metrics(result, config)
  numbers.update({f"test/{k}": v for k, v in metrics.items()})
  lines += [f"Test split, all {_split_size(config)} images:", "", _metric_table(metrics), ""]
  lines += _mse_reference_lines(result, config, metrics, numbers)
  rng = jax.random.PRNGKey(config.seed)
  samples = np.asarray(_sample(result, rng, 32))
  path = figures.save_image_grid(os.path.join(fig_dir, "face_vae_samples.png"), samples, 8,
                                 "32 random samples, z ~ N(0, I)")
  _figure(lines, "32 random samples", path, report_dir)
  codes, labels = encode_codes(result, config.data, max_examples=max_tsne)
  embedding = latents.embed_2d(codes, seed=config.seed)
  attribute = config_lib.with_defaults(config.data, "data").label_attribute or "label"
  path = plots.save_embedding_plot(
      os.path.join(fig_dir, "face_vae_tsne.png"), embedding, labels,
      f"t-SNE of {len(codes)} test posterior means, coloured by {attribute}", label_names)
  _figure(lines, f"t-SNE of test latents coloured by {attribute}", path, report_dir)
  if labels is None:
    lines += ["No label in this data: the linear probe is skipped.", ""]
    return numbers, lines
  train_codes, train_labels = encode_codes(result, config.data, config.data.train_split,
                                           max_probe_train)
  try:
    probe = latents.linear_probe(train_codes, train_labels, codes, labels)
  except ValueError as e:
    lines += [f"Linear probe skipped: {e}", ""]
    return numbers, lines
  numbers.update({f"probe/{k}": v for k, v in probe.items()})
  lines += [f"Linear probe (logistic regression on standardised posterior means, fit on "
            f"{probe['num_train']} training codes, scored on the same {probe['num_test']} "
            f"test codes as the t-SNE): accuracy **{probe['probe_accuracy']:.3f}** at "
            f"predicting {attribute}, against {probe['majority_accuracy']:.3f} for always "
            f"guessing the majority class.", ""]
  return numbers, lines


def analyse_autoencoder(result: train.TrainResult, config: ml_collections.ConfigDict,
                        fig_dir: str, report_dir: str, alphas=latent_edits.DEFAULT_ALPHAS,
                        k: float = 3.0, num_images: int = 8, max_codes: int = 2_000
                        ) -> tuple[dict[str, Any], list[str]]:
  """FC autoencoder: whole-split MSE and the latent-edit figure."""
  numbers, lines = run_summary(result, config, report_dir)
  metrics = whole_split_metrics(result, config)
  numbers.update({f"test/{k_}": v for k_, v in metrics.items()})
  lines += [f"Test split, all {_split_size(config)} images:", "", _metric_table(metrics), ""]
  codes, _ = encode_codes(result, config.data, max_examples=max_codes)
  mean, std = latent_edits.code_statistics(codes)
  indices = latent_edits.most_variable_elements(std)
  images = spread_images(config.data, num_images)
  grid, titles = latent_edits.edit_grid(result.objective, result.state, images,
                                        jax.random.PRNGKey(config.seed), mean, std, alphas,
                                        indices, k)
  path = plots.save_grid_with_column_titles(
      os.path.join(fig_dir, "autoencoder_latent_edits.png"), grid, titles,
      "original | reconstruction | edits of the code")
  # Sanity numbers: a = 0 is the reconstruction, a = 1 ignores the input.
  objective, state = result.objective, result.state
  decode = jax.jit(objective.decode)
  codes_shown = latent_edits.latent_codes(objective, state, images)
  noise = latent_edits.shared_noise(jax.random.PRNGKey(config.seed), mean, std)
  at_zero = decode(state, latent_edits.mix_with_noise(codes_shown, noise, 0.0))
  at_one = decode(state, latent_edits.mix_with_noise(codes_shown, noise, 1.0))
  plain = jax.jit(objective.reconstruct)(state, {"image": jnp.asarray(images)}, None)
  numbers["edit/max_diff_a0_vs_reconstruction"] = float(jnp.max(jnp.abs(at_zero - plain)))
  numbers["edit/max_spread_a1_over_inputs"] = float(jnp.max(jnp.ptp(at_one, axis=0)))
  active = int(np.sum(std > 1e-6))
  lines += [f"Codes: {codes.shape[1]} elements, {active} vary over {len(codes)} test images "
            f"(the code is a ReLU output, so unused elements are exactly 0). Edited elements "
            f"{', '.join(map(str, indices))} (the two with the largest standard deviation) "
            f"are set to mean +/- {k:g} sd; the noise is one vector mean + sd * N(0, I) "
            f"shared by all rows. Checks: a=0 differs from the plain reconstruction by at "
            f"most {numbers['edit/max_diff_a0_vs_reconstruction']:.2g}; at a=1 the rows "
            f"differ by at most {numbers['edit/max_spread_a1_over_inputs']:.2g} "
            f"(the input is ignored).", ""]
  _figure(lines, "Latent edits: original | reconstruction | noise mixing a=" +
          ", ".join(f"{a:g}" for a in alphas) + f" | two elements at +/-{k:g} sd",
          path, report_dir)
  return numbers, lines


def _sample(result: train.TrainResult, rng: jax.Array, num: int) -> jax.Array:
  return jax.jit(result.objective.sample, static_argnums=2)(result.state, rng, num)


def _split_size(config: ml_collections.ConfigDict) -> str:
  info = data_lib.get_dataset_info(config.data)
  split = config_lib.with_defaults(config.data, "data").eval_split
  return f"{info.num_examples.get(split, '?'):,}" if split in info.num_examples else "?"


def label_names(config: ml_collections.ConfigDict) -> tuple[str, ...] | None:
  """The names of the dataset's labels (or of data.label_attribute's two values)."""
  return data_lib.get_dataset_info(config.data).label_names


def analyse_resnet(result: train.TrainResult, config: ml_collections.ConfigDict,
                   report_dir: str) -> tuple[dict[str, Any], list[str]]:
  """ResNet VAE: whole-split negative ELBO in bits/dim, samples and reconstructions."""
  numbers, lines = run_summary(result, config, report_dir)
  metrics = whole_split_metrics(result, config)
  numbers.update({f"test/{k}": v for k, v in metrics.items()})
  lines += [f"Test split, all {_split_size(config)} images: negative ELBO "
            f"**{metrics['bits_per_dim']:.3f} bits/dim** "
            f"({config.objective.likelihood} likelihood).", "", _metric_table(metrics), ""]
  fig_dir = os.path.join(result.workdir, workdir_lib.FIGURES_DIR)
  for name in ("samples", "reconstructions"):
    _figure(lines, name.capitalize(), os.path.join(fig_dir, f"{name}.png"), report_dir)
  return numbers, lines


@dataclasses.dataclass
class Part:
  """One section of the study's report."""
  title: str
  data_label: str
  numbers: dict[str, Any]
  lines: list[str]
  stand_in: bool = False
  skipped: str | None = None  # Why the real dataset was not used.
  ran: bool = True


def skipped_part(title: str, data_label: str, reason: str) -> Part:
  """A part that did not run, with the reason."""
  return Part(title, data_label, {}, [f"Skipped: {reason}", ""], skipped=reason, ran=False)


def run_part(title: str, key: str, config: ml_collections.ConfigDict, source: Source,
             workdir: str, fig_dir: str, analyse) -> Part:
  """Trains (or reloads) workdir/<key> on `source` and runs `analyse(result, config)`."""
  del fig_dir  # The analyses know where their figures go.
  if source.data is None:
    return skipped_part(title, source.label, source.skipped or "no data")
  config.data = source.data
  result = train.train_and_evaluate(config, os.path.join(workdir, key))
  numbers, lines = analyse(result, config)
  return Part(title, source.label, numbers, lines, stand_in=source.stand_in,
              skipped=source.skipped)


def write_report(workdir: str, parts: list[Part], speed: dict[str, Any] | None,
                 speed_config: ml_collections.ConfigDict, quick: bool, smoke: bool) -> str:
  """Writes workdir/report.md (and numbers.json); returns the report's path."""
  mode = "smoke (tiny test configs)" if smoke else "quick" if quick else "full"
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  lines = ["# Face VAEs: Frey conv VAE, CelebA-64 VAE, FC autoencoder, CIFAR-10 ResNet VAE",
           "", f"Mode: **{mode}**. Device: {device}.", ""]
  lines += ["## What ran", ""]
  rows = []
  for part in parts:
    if not part.ran:
      status = f"skipped: {part.skipped}"
    elif part.stand_in:
      status = (f"ran on a STAND-IN ({part.data_label}); the real data is missing: "
                f"{part.skipped}")
    else:
      status = f"ran on {part.data_label}"
    rows.append([part.title, status])
  lines += [reporting.markdown_table(rows, ["part", "status"]), ""]
  if any(p.skipped for p in parts):
    lines += ["README.md (Data) says how to prepare each dataset; rerun the same command "
              "afterwards (finished runs are reused).", ""]
  if any(p.stand_in for p in parts):
    lines += ["Numbers and pictures of stand-in runs only show that the code runs end to "
              "end; they say nothing about faces.", ""]
  if speed is not None:
    lines += _speed_section(speed, speed_config)
  for part in parts:
    lines += [f"## {part.title}", ""] + part.lines
  numbers = {"speed": speed, **{p.title: p.numbers for p in parts if p.ran}}
  return common.write_report(workdir, lines, numbers, numbers_file="numbers.json")


def _speed_section(speed: dict[str, Any], config: ml_collections.ConfigDict) -> list[str]:
  model = config.model
  hours = speed["seconds_per_epoch"] / 3600
  return [
      "## ResNet VAE on CIFAR-10: training speed on this machine", "",
      f"Model: `resnet_vae` width {model.width}, stages {tuple(model.stage_multipliers)}, "
      f"{model.blocks_per_stage} blocks per stage, latent {model.latent_dim}, "
      f"{config.objective.likelihood} likelihood; {speed['num_params']:,} parameters. "
      f"Measured on synthetic 32x32x3 batches of {speed['batch_size']} (the model's compute "
      f"only; experiments/face_vaes/throughput.py).", "",
      reporting.markdown_table([
          ["train steps/s", float(speed["steps_per_sec"])],
          ["images/s", float(speed["examples_per_sec"])],
          ["first step incl. compile (s)", float(speed["compile_seconds"])],
          [f"steps per CIFAR-10 epoch (50,000 / {speed['batch_size']})",
           speed["steps_per_epoch"]],
          ["time per epoch (min)", float(speed["seconds_per_epoch"] / 60)],
      ], ["quantity", "value"]), "",
      f"So one epoch takes about {hours:.2f} h here and the config's "
      f"{config.train.num_steps:,} steps ({config.train.num_steps / speed['steps_per_epoch']:.0f}"
      f" epochs) about {config.train.num_steps / speed['steps_per_sec'] / 3600:.1f} h: a job "
      f"for a GPU. The machine's cores are shared with other work, so these times are upper "
      f"bounds.", ""]
