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
The analyses of `jaxgen.evaluation.kl_ablation` write DIR/figures and DIR/report.md.
"""

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from jaxgen import config_lib
from jaxgen import figures
from jaxgen import runtime
from jaxgen import train
from jaxgen import workdir as workdir_lib
from jaxgen.evaluation import feature_net as feature_net_lib
from jaxgen.evaluation import kl_ablation as kl
from jaxgen.evaluation import sample_quality

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs",
                      "kl_ablation.py")
NUM_IMAGES = 8


def say(message: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
  fig_dir = os.path.join(workdir, "figures")
  iwae_k = iwae_k or (100 if quick else 1000)
  base_config = base_config.copy_and_resolve_references()
  if quick:
    quick_train = config_lib.load(f"{CONFIG}:quick").train
    for field in ("num_steps", "eval_every", "checkpoint_every", "log_every"):
      base_config.train[field] = quick_train[field]
  preprocessing = base_config.data.get("preprocessing", "unit")
  images, labels = kl.spread_examples(base_config.data, NUM_IMAGES)
  # Interpolate between the first spread test image and the last with another label
  # (a 0 and a 9 on mnist_5k).
  other = (int(np.flatnonzero(labels != labels[0])[-1])
           if labels is not None and np.any(labels != labels[0]) else NUM_IMAGES - 1)
  ends = images[[0, other]]
  net = (feature_net_lib.get_feature_net(base_config.data, smoke=feature_net_smoke)
         if fid else None)
  fid_scale = sample_quality.reference_fids(net, base_config.data) if net else None

  start = time.perf_counter()
  results, records, timings, points = {}, {}, {}, []
  rows_recon = [("test images", figures.to_unit_range(images, preprocessing))]
  rows_samples = []
  rows_interp = [("end points", figures.to_unit_range(ends, preprocessing))]
  for n, latent in enumerate(latent_sizes, 1):
    config = base_config.copy_and_resolve_references()
    config.model.latent_dim = int(latent)
    total_steps = config.train.num_steps
    run_name = f"latent {latent}"
    run_dir = os.path.join(workdir, f"latent_{latent}")
    snap_dir = os.path.join(run_dir, "snapshots")
    t0 = time.perf_counter()
    for stage in kl.stage_steps(total_steps):
      say(f"[{n}/{len(latent_sizes)}] {run_name}: KL weights "
          f"{list(config.objective.sweep_values)} in one vmapped program, step {stage} "
          f"of {total_steps}")
      config.train.num_steps = stage
      result = train.train_and_evaluate(config, run_dir)
      # A rerun past this stage restores the end state: keep the snapshot taken then.
      if int(result.state.step) == stage and stage not in kl.load_snapshots(snap_dir):
        kl.save_snapshot(snap_dir, stage, kl.reconstructions(kl.members(result), images))
    timings[run_name] = time.perf_counter() - t0
    say(f"[{n}/{len(latent_sizes)}] {run_name}: test bounds (IWAE-{iwae_k}), latents"
        + (", prior-sample FID" if net else ""))
    copies = kl.members(result)
    snapshots = kl.load_snapshots(snap_dir)
    rng = jax.random.PRNGKey(config.seed)
    results[run_name] = {}
    for i, member in enumerate(copies):
      r = kl.evaluate_member(member, config.data, jax.random.fold_in(rng, i), iwae_k)
      if net is not None:
        r["samples"] = sample_quality.evaluate_samples(
            member.objective, member.state, config.data, config.data.get("eval_split", "test"),
            jax.random.fold_in(rng, 100), net)
      results[run_name][member.tag] = r
      b = r["likelihood"]["bounds"]
      points.append({"run": run_name, "tag": member.tag, "kl": b["kl_nats"]["nats"],
                     "nll": b["nll_nats"]["nats"], "elbo": b["elbo_nats"]["nats"]})
      rows_samples.append((f"{run_name}, {member.tag}",
                           kl.prior_samples(member, jax.random.fold_in(rng, 7), 12)))
      rows_interp.append((f"{run_name}, {member.tag}",
                          kl.interpolations(member, ends[0], ends[1])))
      rows_recon += [(f"{run_name}, {member.tag}, step {step}", snapshots[step][i])
                     for step in sorted(snapshots)]
    records[run_name] = workdir_lib.read_metrics(run_dir)
  tags, weights = [m.tag for m in copies], [m.weight for m in copies]

  say("figures and report")
  figs = {
      "neg_elbo_curves": kl.save_neg_elbo_curves(
          os.path.join(fig_dir, "neg_elbo_curves.png"), records, tags),
      "reconstructions": kl.save_labelled_rows(
          os.path.join(fig_dir, "reconstructions.png"), rows_recon,
          "reconstructions (decoder mean at the posterior mean) at three points in training"),
      "prior_samples": kl.save_labelled_rows(
          os.path.join(fig_dir, "prior_samples.png"), rows_samples,
          "decoder means of z ~ N(0, I) (the same z in every row of one latent size)"),
      "interpolations": kl.save_labelled_rows(
          os.path.join(fig_dir, "interpolations.png"), rows_interp,
          "decoded linear interpolation between the posterior means of two test images"),
      "rate_distortion": kl.save_rate_distortion(
          os.path.join(fig_dir, "rate_distortion.png"), points),
  }
  total = time.perf_counter() - start
  config.train.num_steps = total_steps
  path = write_report(workdir, config, results, figs, timings, total, iwae_k, tags, weights,
                      quick, fid_scale)
  say(f"done in {total / 60:.1f} min: {path}")
  return path


def write_report(workdir, config, results, figs, timings, total, iwae_k, tags, weights,
                 quick, fid_scale=None) -> str:
  """report.md with the table, the explanation and the figures."""
  import json
  net_ids = {r["samples"]["feature_net"] for by_tag in results.values() for r in by_tag.values()
             if "samples" in r}
  lines = [
      "# KL-weight ablation", "",
      f"VAE `{config.model.name}` on `{config.data.name}` ({config.data.get('preprocessing')}), "
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
         f"dataset's labels); their sample counts are in results.json." if net_ids else "")
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
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"runs": results, "fid_scale": fid_scale}, f, indent=2, sort_keys=True,
              default=float)
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def _run(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  runtime.enable_compilation_cache()
  cfg = flags.FLAGS
  run_study(cfg.workdir, cfg.config, quick=cfg.quick,
            latent_sizes=[int(v) for v in cfg.latents], iwae_k=cfg.iwae_k, fid=cfg.fid)


def main():
  """Defines the flags (here, so tests can import this module) and runs."""
  flags.DEFINE_string("workdir", None, "Where runs, figures and report.md go.")
  flags.DEFINE_bool("quick", False, "Short schedule (configs/kl_ablation.py:quick).")
  flags.DEFINE_list("latents", ["20", "50"], "Latent sizes, one sweep run each.")
  flags.DEFINE_integer("iwae_k", None, "k of the IWAE bound (default 1000; 100 with --quick).")
  flags.DEFINE_bool("fid", True, "Prior-sample FID/precision/recall from the dataset's "
                    "feature network (trained once, ~1-2 min on CPU).")
  config_flags.DEFINE_config_file("config", CONFIG, "Base config; --config.<field>=... "
                                  "overrides apply to every run.")
  flags.mark_flags_as_required(["workdir"])
  app.run(_run)


if __name__ == "__main__":
  main()
