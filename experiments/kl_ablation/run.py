r"""KL-weight ablation: VAEs with latent 20 and 50 trained with the KL term times 1, 100, 0.

  python experiments/kl_ablation/run.py --workdir=runs/kl_ablation --quick
  python experiments/kl_ablation/run.py --workdir=runs/kl_ablation_full

Reproduces a report that trained a VAE with latent 20 and 50, Adam lr 1e-4, batch 100,
and the KL term multiplied by 1, 100 and 0. Every weight of one latent size trains in
one program (`configs/kl_ablation.py`: the `sweep` objective, jax.vmap over the weight;
one compile, one pass over the data). Offline on mnist_5k; --quick takes a few minutes
on 2 CPU cores. Any config field applies to every run, e.g. another prepared dataset:
--config.data.name=... --config.model.image_shape="(64, 64, 3)".

Runs train through `jaxgen.train.train_and_evaluate` into DIR/latent_<n> in three stages
(1/10, 1/3 and all of the steps, keeping reconstructions at each); a rerun reuses them.
The analyses (`analysis.py` here, `jaxgen.evaluation`) write DIR/figures and
DIR/report.md.
"""

import os
import sys
import time

from absl import flags
import numpy as np
from ml_collections import config_flags

# `python experiments/<study>/run.py` puts only this folder on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments import common  # noqa: E402  (first: it splits the CPU host before JAX starts)
import jax  # noqa: E402
from experiments.kl_ablation import analysis as kl  # noqa: E402
from jaxgen import config_lib  # noqa: E402
from jaxgen import train  # noqa: E402
from jaxgen import value_range  # noqa: E402
from jaxgen import workdir as workdir_lib  # noqa: E402
from jaxgen.evaluation import examples  # noqa: E402
from jaxgen.evaluation import feature_net as feature_net_lib  # noqa: E402
from jaxgen.evaluation import plots  # noqa: E402
from jaxgen.evaluation import sample_quality  # noqa: E402

CONFIG = os.path.join(common.REPO, "configs", "kl_ablation.py")
NUM_IMAGES = 8


def run_study(workdir: str, base_config, *, quick: bool, latent_sizes=(20, 50),
              iwae_k: int | None = None, fid: bool = True,
              feature_net_smoke: bool = False) -> str:
  """Trains (or reuses) one sweep per latent size, analyses them, writes report.md.

  Args:
    workdir: the study's directory.
    base_config: configs/kl_ablation.py's config (with any overrides).
    quick: take the schedule of the config's `quick` variant.
    latent_sizes: one sweep run per size.
    iwae_k: k of the IWAE bound (default 1000, 100 with quick).
    fid: prior-sample FID etc. from the dataset's feature network.
    feature_net_smoke: a tiny feature network (tests).
  """
  workdir = os.path.abspath(workdir)
  iwae_k = iwae_k or (100 if quick else 1000)
  base_config = base_config.copy_and_resolve_references()
  if quick:
    _use_quick_schedule(base_config)
  data_range = value_range.of_data(base_config.data)
  images, labels = examples.spread_examples(base_config.data, NUM_IMAGES)
  ends = _interpolation_ends(images, labels)
  net, fid_scale = _feature_net(base_config, fid, feature_net_smoke)

  start = time.perf_counter()
  results, records, timings, points = {}, {}, {}, []
  rows = {"reconstructions": [("test images", data_range.to_unit(images))],
          "prior_samples": [],
          "interpolations": [("end points", data_range.to_unit(ends))]}
  for n, latent in enumerate(latent_sizes, 1):
    config = base_config.copy_and_resolve_references()
    config.model.latent_dim = int(latent)
    total_steps = config.train.num_steps
    run_name, run_dir = f"latent {latent}", os.path.join(workdir, f"latent_{latent}")
    t0 = time.perf_counter()
    result = _train_in_stages(config, run_dir, images, f"[{n}/{len(latent_sizes)}] {run_name}")
    timings[run_name] = time.perf_counter() - t0
    common.say(f"[{n}/{len(latent_sizes)}] {run_name}: test bounds (IWAE-{iwae_k}), latents"
               + (", prior-sample FID" if net else ""))
    copies = kl.members(result)
    results[run_name] = _evaluate_copies(run_name, copies, config, iwae_k, net, ends,
                                         kl.load_snapshots(os.path.join(run_dir, "snapshots")),
                                         rows, points)
    records[run_name] = workdir_lib.read_metrics(run_dir)
  tags, weights = [m.tag for m in copies], [m.value for m in copies]

  common.say("figures and report")
  figs = _figures(os.path.join(workdir, "figures"), records, tags, rows, points)
  total = time.perf_counter() - start
  config.train.num_steps = total_steps
  path = write_report(workdir, config, results, figs, timings, total, iwae_k, tags, weights,
                      quick, fid_scale)
  common.say(f"done in {total / 60:.1f} min: {path}")
  return path


def _use_quick_schedule(config) -> None:
  """Takes the training schedule of configs/kl_ablation.py:quick into `config`."""
  quick_train = common.load_config(f"{CONFIG}:quick").train
  for field in ("num_steps", "eval_every", "checkpoint_every", "log_every"):
    config.train[field] = quick_train[field]


def _interpolation_ends(images: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
  """The first spread test image and the last with another label (a 0 and a 9 on mnist_5k)."""
  other = (int(np.flatnonzero(labels != labels[0])[-1])
           if labels is not None and np.any(labels != labels[0]) else NUM_IMAGES - 1)
  return images[[0, other]]


def _feature_net(config, fid: bool, smoke: bool):
  """The dataset's feature network and its reference FIDs, or (None, None) without FID."""
  net = feature_net_lib.get_feature_net(config.data, smoke=smoke) if fid else None
  fid_scale = sample_quality.reference_fids(net, config.data) if net else None
  return net, fid_scale


def _train_in_stages(config, run_dir: str, images: np.ndarray, label: str):
  """Trains to 1/10, 1/3 and all of the steps, keeping reconstructions at each stage."""
  snap_dir = os.path.join(run_dir, "snapshots")
  total_steps = config.train.num_steps
  for stage in kl.stage_steps(total_steps):
    common.say(f"{label}: KL weights {list(config.objective.sweep_values)} in one vmapped "
               f"program, step {stage} of {total_steps}")
    config.train.num_steps = stage
    result = train.train_and_evaluate(config, run_dir)
    # A rerun past this stage restores the end state: keep the snapshot taken then.
    if int(result.state.step) == stage and stage not in kl.load_snapshots(snap_dir):
      kl.save_snapshot(snap_dir, stage, kl.reconstructions(kl.members(result), images))
  config.train.num_steps = total_steps
  return result


def _evaluate_copies(run_name, copies, config, iwae_k, net, ends, snapshots, rows, points):
  """Bounds, latents and sample quality of every copy; adds its figure rows and points."""
  rng = jax.random.PRNGKey(config.seed)
  results = {}
  for i, member in enumerate(copies):
    r = kl.evaluate_member(member, config.data, jax.random.fold_in(rng, i), iwae_k)
    if net is not None:
      r["samples"] = sample_quality.evaluate_samples(
          member.objective, member.state, config.data,
          config_lib.with_defaults(config.data, "data").eval_split,
          jax.random.fold_in(rng, 100), net)
    results[member.tag] = r
    b = r["likelihood"]["bounds"]
    points.append({"run": run_name, "tag": member.tag, "kl": b["kl_nats"]["nats"],
                   "nll": b["nll_nats"]["nats"], "elbo": b["elbo_nats"]["nats"]})
    rows["prior_samples"].append((f"{run_name}, {member.tag}",
                                  kl.prior_samples(member, jax.random.fold_in(rng, 7), 12)))
    rows["interpolations"].append((f"{run_name}, {member.tag}",
                                   kl.interpolations(member, ends[0], ends[1])))
    rows["reconstructions"] += [(f"{run_name}, {member.tag}, step {step}", snapshots[step][i])
                                for step in sorted(snapshots)]
  return results


def _figures(fig_dir, records, tags, rows, points) -> dict[str, str]:
  """The study's figures; returns {name: path}."""
  titles = {
      "reconstructions": "reconstructions (decoder mean at the posterior mean) at three "
                         "points in training",
      "prior_samples": "decoder means of z ~ N(0, I) (the same z in every row of one latent "
                       "size)",
      "interpolations": "decoded linear interpolation between the posterior means of two "
                        "test images",
  }
  figs = {"neg_elbo_curves": kl.save_neg_elbo_curves(
      os.path.join(fig_dir, "neg_elbo_curves.png"), records, tags)}
  for name, title in titles.items():
    figs[name] = plots.save_labelled_rows(os.path.join(fig_dir, f"{name}.png"), rows[name],
                                          title)
  figs["rate_distortion"] = kl.save_rate_distortion(
      os.path.join(fig_dir, "rate_distortion.png"), points)
  return figs


def write_report(workdir, config, results, figs, timings, total, iwae_k, tags, weights,
                 quick, fid_scale=None) -> str:
  """report.md with the table, the explanation and the figures."""
  net_ids = {r["samples"]["feature_net"] for by_tag in results.values() for r in by_tag.values()
             if "samples" in r}
  lines = [
      "# KL-weight ablation", "",
      f"VAE `{config.model.name}` on `{config.data.name}` ({value_range.of_data(config.data).preprocessing}), "
      f"Adam lr {config.optimizer.learning_rate:g}, batch {config.data.batch_size}, "
      f"{config.train.num_steps} steps{' (--quick)' if quick else ''}; loss = NLL + w * KL "
      f"for w in {', '.join(f'{w:g}' for w in weights)}. Every weight of one latent size "
      f"trained in one program (jax.vmap over w: one compile, one pass over the data).", "",
      "## Results (test split)", "",
      kl.results_table(results, iwae_k), "",
      f"-ELBO and -IWAE-{iwae_k} are means over the test split ± standard errors; the ELBO "
      f"always uses w = 1, whatever w trained with. A unit is active when the variance of "
      f"its posterior mean over the test set exceeds 0.01."
      + (f" FID, precision and recall compare prior samples with the test split through "
         f"the feature network `{', '.join(sorted(net_ids))}` (trained inside jaxgen on the "
         f"dataset's labels), {_sample_counts(results)}; the FID's 95% interval is a "
         f"bootstrap over both sets (jaxgen.evaluation.sample_quality.fid_bootstrap)."
         if net_ids else "")
      + (f" For scale: FID between {fid_scale['num_examples']} real test and as many real "
         f"train images is {fid_scale['fid_real_vs_real']:.1f}, and between the test "
         f"images and uniform noise {fid_scale['fid_real_vs_noise']:.1f}." if fid_scale
         else ""),
      "", "## What the KL weight does", "",
      *[line + "\n" for line in kl.explain(results, tags, weights)],
      "## Figures", "",
  ]
  for name, path in figs.items():
    lines += [f"### {name.replace('_', ' ')}", "",
              f"![{name}]({os.path.relpath(path, workdir)})", ""]
  lines += ["## Timing", "", "Wall-clock on this machine (includes evaluation): " + ", ".join(
      f"{k} {v / 60:.1f} min training" for k, v in timings.items())
      + f"; whole study {total / 60:.1f} min.", ""]
  return common.write_report(workdir, lines, {"runs": results, "fid_scale": fid_scale})


def _sample_counts(results) -> str:
  """The sample counts of the FIDs in `results`: "1,000 generated vs 500 real images"."""
  counts = sorted({(r["samples"]["num_generated"], r["samples"]["num_real"])
                   for by_tag in results.values() for r in by_tag.values() if "samples" in r})
  return ", ".join(f"{g:,} generated vs {n:,} real images" for g, n in counts)


def main():
  """Defines the flags (here, so tests can import this module) and runs."""
  common.define_study_flags("Short schedule (configs/kl_ablation.py:quick).")
  flags.DEFINE_list("latents", ["20", "50"], "Latent sizes, one sweep run each.")
  flags.DEFINE_integer("iwae_k", None, "k of the IWAE bound (default 1000; 100 with --quick).")
  flags.DEFINE_bool("fid", True, "Prior-sample FID/precision/recall from the dataset's "
                    "feature network (trained once, ~1-2 min on CPU).")
  config_flags.DEFINE_config_file("config", CONFIG, "Base config; --config.<field>=... "
                                  "overrides apply to every run.")
  common.main(lambda cfg: run_study(cfg.workdir, cfg.config, quick=cfg.quick,
                                    latent_sizes=[int(v) for v in cfg.latents],
                                    iwae_k=cfg.iwae_k, fid=cfg.fid))


if __name__ == "__main__":
  main()
