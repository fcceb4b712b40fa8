r"""Command line: evaluate a trained run offline and write eval.json plus figures.

  python -m jaxgen.evaluate --workdir=runs/vae_a [--split=test]
  python -m jaxgen.evaluate --workdir=runs/vae_a --metrics=likelihood --iwae_k=1,100,5000

Restores the workdir's latest checkpoint (trains nothing) and computes, for what the
model family supports (`--metrics`, default all that apply):

  likelihood  ELBO and IWAE-k bounds with standard errors, nats and bits/dim (VAEs)
  samples     FID (with a 95% bootstrap interval, --fid_resamples), KID, precision/recall
              and classifier score against the split, from a feature network trained once
              per dataset inside jaxgen (see jaxgen/evaluation/feature_net.py; the first
              call trains it, ~1-2 min on CPU)
  latents     t-SNE / k-NN accuracy / silhouette of the codes, active units, KL per
              dimension, traversals (autoencoders)

Results go to <workdir>/eval.json under the split's name (other splits' entries stay),
figures to <workdir>/figures/eval_*.png.
"""

import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from jaxgen import config_lib
from jaxgen import paths

METRICS = ("likelihood", "samples", "latents")
EVAL_FILE = "eval.json"


def default_metrics(objective: Any) -> tuple[str, ...]:
  """The metrics that apply to a model family, by what it declares it can do."""
  from jaxgen.objectives import base
  from jaxgen.objectives import classification
  chosen = []
  if isinstance(objective, base.LatentVariableModel):
    chosen.append("likelihood")
  # A classifier's `sample` draws class visualisations, not data: no sample quality.
  if (isinstance(objective, base.Sampler)
      and not isinstance(objective, classification.ClassificationObjective)):
    chosen.append("samples")
  if isinstance(objective, base.Autoencoder):
    chosen.append("latents")
  return tuple(chosen)


def _models(run) -> list[tuple[str | None, Any, Any]]:
  """(tag, objective, state) of each model in a run: one, or every member of a collection."""
  from jaxgen.objectives import base
  if isinstance(run.objective, base.ModelCollection):
    return [(m.tag, m.objective, m.state) for m in run.objective.members(run.state)]
  return [(None, run.objective, run.state)]


def _eval_batches(config, split, batch_size=None):
  from jaxgen import data as data_lib
  return data_lib.make_eval_batches(config.data, split=split, batch_size=batch_size)


def evaluate_latents(objective: Any, state: Any, config: Any, workdir: str, split: str,
                     max_examples: int | None, seed: int, suffix: str = "") -> dict[str, Any]:
  """Latent analysis of a model on a split, with its figures under workdir/figures/."""
  from jaxgen import data as data_lib
  from jaxgen import figures
  from jaxgen.evaluation import latents
  from jaxgen.evaluation import plots
  encoded = latents.encode_split(objective, state, _eval_batches(config, split), max_examples)
  result = latents.analyze(encoded, seed=seed)
  fig_dir = os.path.join(workdir, "figures")
  info = data_lib.get_dataset_info(config.data)
  split = split + suffix
  shown = min(len(encoded.mu), 2000)  # t-SNE cost grows with N^2.
  points = latents.embed_2d(encoded.mu[:shown], seed=seed)
  codes_2d = encoded.mu.shape[1] == 2  # embed_2d draws 2-D codes as they are.
  how = "codes" if codes_2d else "t-SNE of the codes"
  extra = (f", k-NN acc {result['knn_accuracy']:.3f}, silhouette {result['silhouette']:.3f}"
           if "knn_accuracy" in result else "")
  figs = {"latents": plots.save_embedding_plot(
      os.path.join(fig_dir, f"eval_latents_{split}.png"), points,
      None if encoded.labels is None else encoded.labels[:shown],
      f"{how} ({split}, n={shown}){extra}", info.label_names,
      plots.CODE_AXES if codes_2d else plots.TSNE_AXES)}
  order = np.arange(result["latent_dim"])
  if "kl_per_dim_nats" in result:
    figs["kl_per_dim"] = plots.save_kl_per_dim_plot(
        os.path.join(fig_dir, f"eval_kl_per_dim_{split}.png"), result["kl_per_dim_nats"],
        f"KL per dimension ({split}); {result['active_units']} of {result['latent_dim']} "
        f"units active")
    order = np.argsort(result["kl_per_dim_nats"])[::-1]
  dims = [int(d) for d in order[:min(8, len(order))]]
  values = np.linspace(-3, 3, 9)
  images = latents.traversal(objective, state, encoded.mu[0], dims, values)
  figs["traversals"] = figures.save_image_grid(
      os.path.join(fig_dir, f"eval_traversals_{split}.png"), images, len(values),
      f"traversals: rows = dims {dims} (by KL), columns = {values[0]:g}..{values[-1]:g}")
  result["traversal_dims"] = dims
  result["figures"] = {k: os.path.relpath(v, workdir) for k, v in figs.items()}
  return result


# Evaluation presets for the literature's protocols (`--protocol`): what the run's data
# must be, the IWAE k of the reported NLL, and published numbers to place it against.
PROTOCOLS = {
    "binarized": {
        "preprocessing": ("binarize_dynamic", "binarize_static"),
        "iwae_k": (5000,),
        "published": [
            ("VAE, one stochastic layer (784-200-200-50 tanh, k = 1), full MNIST", 86.76,
             "Burda et al., Importance Weighted Autoencoders, ICLR 2016, Table 1; "
             "configs/mnist_vae_burda2016.py:full"),
            ("IWAE k = 50, same network", 84.78, "Burda et al. 2016, Table 1"),
        ],
    },
}


def check_protocol(config: Any, protocol: str) -> None:
  """Fails with the fix when the run's data does not follow `protocol`."""
  preset = PROTOCOLS[protocol]
  preprocessing = config_lib.with_defaults(config.data, "data").preprocessing
  if preprocessing not in preset["preprocessing"]:
    raise ValueError(
        f"--protocol={protocol} needs a run trained on binarized digits "
        f"(data.preprocessing in {list(preset['preprocessing'])}), but this run used "
        f"data.preprocessing={preprocessing!r}; train one with "
        f"--config=configs/mnist_vae.py:protocol=binarized or "
        f"configs/mnist_vae_burda2016.py.")


def protocol_lines(protocol: str, dataset: str) -> list[str]:
  """The published numbers of `protocol`, with sources, to print beside a result."""
  lines = [f"Published test NLL under the {protocol} protocol (IWAE k = 5000, nats):"]
  lines += [f"  {nats:.2f}  {what} ({source})"
            for what, nats, source in PROTOCOLS[protocol]["published"]]
  if dataset != "mnist":
    lines.append(f"  This run's dataset is {dataset!r}: with fewer training digits (mnist_5k "
                 f"has 4,500 of MNIST's 60,000) and a shorter schedule its NLL is higher.")
  return lines


def _record_header(run, split: str, metrics: Sequence[str], seed: int) -> dict[str, Any]:
  """What eval.json records about the run and the evaluation asked of it."""
  config = run.config
  return {
      "workdir": run.workdir, "step": run.step, "split": split,
      "dataset": config.data.name,
      "preprocessing": config_lib.with_defaults(config.data, "data").preprocessing,
      "model": config.model.name, "objective": config.objective.name, "metrics": list(metrics),
      "seed": seed,
  }


def evaluate_workdir(workdir: str, split: str = "test", metrics: Sequence[str] | None = None,
                     *, data_dir: str | None = None, iwae_k: Sequence[int] = (100,),
                     max_examples: int | None = None, num_samples: int | None = None,
                     train_feature_net: bool = True, feature_net_steps: int = 1000,
                     feature_net_smoke: bool = False, max_decoder_batch: int = 4096,
                     fid_resamples: int | None = None, seed: int = 0,
                     protocol: str | None = None) -> dict[str, Any]:
  """Evaluates a run's latest checkpoint; writes eval.json and figures; returns the results.

  Args:
    workdir: a training run's workdir.
    split: the split to evaluate on.
    metrics: subset of METRICS; None = `default_metrics` of the family. Asking for one
      the family lacks (e.g. likelihood of a GAN) is an error.
    data_dir: overrides the run's data.data_dir.
    iwae_k: k of each IWAE-k bound.
    max_examples: at most this many examples of the split (likelihood, latents).
    num_samples: generated samples for sample quality (None = the split's size).
    train_feature_net: train the dataset's feature network when it is missing.
    feature_net_steps, feature_net_smoke: its training steps; a tiny one (tests only).
    max_decoder_batch: decoder inputs per IWAE chunk (bounds memory).
    fid_resamples: bootstrap resamples of the FID's interval (None =
      `sample_quality.FID_RESAMPLES`; 0 = none).
    seed: evaluation seed.
    protocol: a key of PROTOCOLS the run's data must follow (None: any data).

  Raises:
    NoCheckpointError: no checkpoint in the workdir.
    NoLikelihoodError: likelihood asked of a family without one.
    ValueError: an unknown metric name.
    FeatureNetChecksumError: the stored feature network does not match its checksum.
  """
  from jaxgen.evaluation import feature_net as feature_net_lib
  from jaxgen.evaluation import runs

  _check_metric_names(metrics)
  run = runs.restore_run(workdir, data_dir)
  if protocol:
    check_protocol(run.config, protocol)
  models = _models(run)
  first = models[0][1]
  _check_capabilities(metrics or (), first)
  metrics = tuple(metrics or default_metrics(first))
  config = run.config
  if max_examples and max_examples < config.data.batch_size:
    config.data.batch_size = max_examples  # Compute no more than is kept.
  results = _record_header(run, split, metrics, seed)
  timings: dict[str, float] = {}
  net = None
  if "samples" in metrics:
    with _timed(timings, "feature_net"):
      net = feature_net_lib.get_feature_net(
          config.data, train_if_missing=train_feature_net, num_steps=feature_net_steps,
          smoke=feature_net_smoke)
  for tag, objective, state in models:
    out = results if tag is None else results.setdefault("members", {}).setdefault(tag, {})
    _evaluate_model(out, objective, state, tag, run.workdir, config, split, metrics,
                    timings, net=net, iwae_k=iwae_k, max_examples=max_examples,
                    num_samples=num_samples, max_decoder_batch=max_decoder_batch,
                    fid_resamples=fid_resamples, seed=seed)
  results["seconds"] = timings
  if jax.process_index() == 0:
    _store(run.workdir, split, results)
  return results


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
  """Adds the block's wall time to timings[name]."""
  start = time.perf_counter()
  yield
  timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _evaluate_model(out: dict[str, Any], objective: Any, state: Any, tag: str | None,
                    workdir: str, config: Any, split: str, metrics: Sequence[str],
                    timings: dict[str, float], *, net: Any, iwae_k: Sequence[int],
                    max_examples: int | None, num_samples: int | None,
                    max_decoder_batch: int, fid_resamples: int | None, seed: int) -> None:
  """Computes `metrics` of one model (a run, or one member of a sweep) into `out`."""
  from jaxgen.evaluation import likelihood
  from jaxgen.evaluation import progress
  from jaxgen.evaluation import sample_quality

  rng = jax.random.PRNGKey(seed)
  if "likelihood" in metrics:
    with _timed(timings, "likelihood"):
      logging.info("Likelihood bounds (IWAE k=%s) on %s ...", list(iwae_k), split)
      out["likelihood"] = likelihood.likelihood_report(
          objective, state, _eval_batches(config, split), jax.random.fold_in(rng, 1),
          tuple(int(k) for k in iwae_k), max_examples, max_decoder_batch,
          num_batches=progress.num_eval_batches(config.data, split, max_examples))
  if "samples" in metrics:
    with _timed(timings, "samples"):
      logging.info("Sample quality with feature network %s ...", net.id)
      out["samples"] = sample_quality.evaluate_samples(
          objective, state, config.data, split, jax.random.fold_in(rng, 2), net, num_samples,
          fid_resamples=(sample_quality.FID_RESAMPLES if fid_resamples is None
                         else fid_resamples), seed=seed)
  if "latents" in metrics:
    with _timed(timings, "latents"):
      out["latents"] = evaluate_latents(objective, state, config, workdir, split,
                                        max_examples, seed,
                                        "" if tag is None else "_" + tag.replace("=", ""))


def _store(workdir: str, split: str, results: dict[str, Any]) -> None:
  """Writes `results` under `split` in workdir/eval.json (other splits' entries stay)."""
  path = paths.join(workdir, EVAL_FILE)
  stored = json.loads(paths.read_text(path)) if paths.exists(path) else {}
  stored[split] = results
  paths.write_atomically(path, json.dumps(stored, indent=2, sort_keys=True))


def _check_metric_names(metrics: Sequence[str] | None) -> None:
  unknown = sorted(set(metrics or ()) - set(METRICS))
  if unknown:
    raise ValueError(f"Unknown metric(s) {unknown} (flag --metrics); known: {', '.join(METRICS)}.")


def _check_capabilities(metrics: Sequence[str], objective: Any) -> None:
  """Fails before any work when a metric asked for needs what the family lacks."""
  from jaxgen.evaluation import likelihood
  from jaxgen.objectives import base
  if "likelihood" in metrics:
    likelihood.check_has_likelihood(objective, "likelihood (ELBO / IWAE)")
  if "latents" in metrics and not isinstance(objective, base.Autoencoder):
    raise likelihood.NoLikelihoodError(
        f"Latent analysis needs an encoder, but {type(objective).__name__} has none.")


def summary_lines(results: dict[str, Any]) -> list[str]:
  """A few human-readable lines of `evaluate_workdir` results."""
  from jaxgen.evaluation import sample_quality
  lines = [f"{results['model']} ({results['objective']}) on {results['dataset']}/"
           f"{results['split']}, step {results['step']}:"]
  parts = [("", results)] + [(f"[{tag}] ", r) for tag, r in results.get("members", {}).items()]
  for prefix, part in parts:
    for name, bound in part.get("likelihood", {}).get("bounds", {}).items():
      if "negative_nats" in bound:
        # No bits/dim for a Bernoulli of grey levels (a cross-entropy, not a likelihood).
        bits = (f"{bound['bits_per_dim']:.4f} bits/dim, " if "bits_per_dim" in bound else "")
        lines.append(f"  {prefix}-{name.replace('_nats', '')}: {bound['negative_nats']:.2f} "
                     f"+- {bound['nats_stderr']:.2f} nats ({bits}n={bound['num_examples']})")
    if "samples" in part:
      s = part["samples"]
      lines.append(f"  {prefix}{sample_quality.describe_fid(s, decimals=3)}, KID x 1e3 "
                   f"{1e3 * s['kid']:.3f} +- {1e3 * s['kid_std']:.3f} (std over "
                   f"{s['kid_subsets']} subsets of {s['kid_subset_size']}), "
                   f"precision {s['precision']:.3f}, recall {s['recall']:.3f}, classifier "
                   f"score {s['classifier_score']:.3f} (feature net {s['feature_net']})")
    if "latents" in part:
      lat = part["latents"]
      extra = (f", k-NN accuracy {lat['knn_accuracy']:.3f}, silhouette "
               f"{lat['silhouette']:.3f}" if "knn_accuracy" in lat else "")
      lines.append(f"  {prefix}latents: {lat['active_units']} of {lat['latent_dim']} units "
                   f"active{extra}")
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  from jaxgen import data as data_lib
  from jaxgen import runtime
  from jaxgen.evaluation import feature_net as feature_net_lib
  from jaxgen.evaluation import likelihood
  from jaxgen.evaluation import runs
  cfg = flags.FLAGS
  # TensorFlow only feeds data: off accelerators, and its start-up lines hidden as in
  # training, unless --verbosity asks for them.
  quiet = cfg["verbosity"].using_default_value
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if quiet else "0")
  runtime.start_tensorflow(quiet=quiet)
  metrics, iwae_k = cfg.metrics or None, [int(k) for k in cfg.iwae_k]
  if cfg.protocol:
    metrics = metrics or ["likelihood"]
    if not cfg["iwae_k"].present:
      iwae_k = list(PROTOCOLS[cfg.protocol]["iwae_k"])
  try:
    results = evaluate_workdir(
        cfg.workdir, cfg.split, metrics, data_dir=cfg.data_dir, iwae_k=iwae_k,
        max_examples=cfg.max_examples,
        num_samples=cfg.num_samples, train_feature_net=cfg.train_feature_net,
        feature_net_steps=cfg.feature_net_steps, max_decoder_batch=cfg.max_decoder_batch,
        fid_resamples=cfg.fid_resamples, seed=cfg.seed, protocol=cfg.protocol or None)
  except (runs.NoCheckpointError, likelihood.NoLikelihoodError,
          feature_net_lib.FeatureNetChecksumError, feature_net_lib.FeatureNetMissingError,
          data_lib.DatasetNotPreparedError, ValueError) as e:
    sys.exit(f"jaxgen.evaluate: {type(e).__name__}: {e}")
  print("\n".join(summary_lines(results)))
  if cfg.protocol:
    print("\n".join(protocol_lines(cfg.protocol, results["dataset"])))
  print(f"Wrote {os.path.join(os.path.abspath(cfg.workdir), EVAL_FILE)}")


def define_flags() -> None:
  """Defines the command's flags (at run time, so importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "Workdir of a training run.")
  flags.DEFINE_string("split", "test", "Split to evaluate on.")
  flags.DEFINE_list("metrics", [], f"Subset of {', '.join(METRICS)}; default: all that apply.")
  flags.DEFINE_list("iwae_k", ["100"], "k of each IWAE-k bound, e.g. 1,100,5000 (cost grows "
                    "with k: thousands suit accelerators).")
  flags.DEFINE_integer("max_examples", None, "Evaluate at most this many examples of the split.")
  flags.DEFINE_integer("num_samples", None, "Generated samples for sample quality "
                       "(default: as many as the split has examples).")
  flags.DEFINE_string("data_dir", None, "Override the run's data.data_dir.")
  flags.DEFINE_bool("train_feature_net", True, "Train the dataset's feature network if missing.")
  flags.DEFINE_integer("feature_net_steps", 1000, "Training steps of a new feature network.")
  flags.DEFINE_integer("max_decoder_batch", 4096, "Most decoder inputs at once in IWAE (memory).")
  flags.DEFINE_integer("fid_resamples", None, "Bootstrap resamples of the FID's 95% "
                       "interval (default: jaxgen.evaluation.sample_quality.FID_RESAMPLES, "
                       "100; 0 = no interval).")
  flags.DEFINE_integer("seed", 0, "Seed of the evaluation's randomness.")
  flags.DEFINE_enum("protocol", "", ["", *PROTOCOLS],
                    "A literature protocol: checks the run's data, defaults to its metrics "
                    "and IWAE k (binarized: likelihood, k = 5000) and prints published "
                    "numbers beside the result.")
  flags.mark_flags_as_required(["workdir"])


def run():
  """Console-script entry point (`jaxgen-evaluate`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
