"""Analyses of the KL-weight ablation study (run.py next to this file).

The study trains one `sweep` run per latent size, each holding one VAE per KL weight
(loss = NLL + w * KL). Here: views of a sweep's copies, reconstruction snapshots
during training, per-weight bounds / latent statistics / sample quality, the figures
(negative-ELBO curves, reconstructions at three points, prior samples,
interpolations, rate-distortion) and the report's markdown.
"""

import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import config_lib
from jaxgen import data as data_lib
from jaxgen import figures
from jaxgen import reporting
from jaxgen import workdir as workdir_lib
from jaxgen.evaluation import latents as latents_lib
from jaxgen.evaluation import likelihood as likelihood_lib
from jaxgen.evaluation import progress
from jaxgen.evaluation import sample_quality
from jaxgen.objectives import base

Member = base.Member  # One copy of a sweep: tag, KL weight (`value`), objective, state.


def members(result: Any) -> list[Member]:
  """The copies of a finished sweep run (`train.TrainResult` of a `sweep` objective)."""
  return result.objective.members(result.state)


def stage_steps(num_steps: int) -> tuple[int, ...]:
  """The three points in training where reconstructions are kept: 1/10, 1/3 and the end."""
  return tuple(sorted({max(1, num_steps // 10), max(1, num_steps // 3), num_steps}))


def reconstructions(members_: Sequence[Member], images: np.ndarray) -> np.ndarray:
  """(copies, N, H, W, C) reconstructions in [0, 1] of preprocessed `images`."""
  out = []
  for m in members_:
    recon = jax.jit(m.objective.reconstruct)(m.state, {"image": jnp.asarray(images)},
                                             jax.random.PRNGKey(0))
    out.append(np.asarray(jax.device_get(recon)))
  return np.stack(out)


def save_snapshot(directory: str, step: int, recons: np.ndarray) -> str:
  """Stores reconstructions taken at `step` (survives reruns of the study)."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"reconstructions_step_{step}.npy")
  np.save(path + ".tmp.npy", recons)
  os.replace(path + ".tmp.npy", path)
  return path


def load_snapshots(directory: str) -> dict[int, np.ndarray]:
  """{step: (copies, N, H, W, C)} of every stored snapshot."""
  if not os.path.isdir(directory):
    return {}
  return {int(name[len("reconstructions_step_"):-4]): np.load(os.path.join(directory, name))
          for name in os.listdir(directory)
          if name.startswith("reconstructions_step_") and name.endswith(".npy")}


def evaluate_member(member: Member, data_config: Any, rng: jax.Array,
                    iwae_k: int = 1000, max_examples: int | None = None) -> dict[str, Any]:
  """Test bounds (ELBO, IWAE-k, with standard errors) and latent statistics of one copy."""
  split = config_lib.with_defaults(data_config, "data").eval_split
  bounds = likelihood_lib.likelihood_report(
      member.objective, member.state, data_lib.make_eval_batches(data_config), rng,
      (iwae_k,), max_examples,
      num_batches=progress.num_eval_batches(data_config, split, max_examples))
  encoded = latents_lib.encode_split(member.objective, member.state,
                                     data_lib.make_eval_batches(data_config), max_examples)
  stats = latents_lib.analyze(encoded)
  return {"likelihood": bounds, "latents": stats}


# ------------------------------------------------------------------ figures
def save_neg_elbo_curves(path: str, records_by_run: Mapping[str, Sequence[Mapping]],
                         tags: Sequence[str]) -> str:
  """Negative ELBO against step, one panel per run, one colour per KL weight."""
  plt = figures.plt
  fig, axes = plt.subplots(1, len(records_by_run), figsize=(5 * len(records_by_run), 3.6),
                           squeeze=False)
  colours = plt.get_cmap("tab10")
  for ax, (run, records) in zip(axes[0], records_by_run.items()):
    for i, tag in enumerate(tags):
      for split, style in (("train", "-"), ("eval", "o--")):
        steps, values = workdir_lib.metric_series(records, f"{split}/elbo_nats/{tag}")
        if len(steps):
          ax.plot(steps, -values, style, color=colours(i), markersize=3,
                  label=f"{tag} ({'test' if split == 'eval' else split})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    figures.whole_number_ticks(ax.xaxis)
    ax.set_ylabel("negative ELBO (nats)")
    ax.set_title(run)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  fig.tight_layout()
  return figures.save_figure(fig, path)


def interpolations(member: Member, image_a: np.ndarray, image_b: np.ndarray,
                   num: int = 10) -> np.ndarray:
  """Decoded linear interpolation between the posterior means of two images."""
  mu, _ = jax.jit(member.objective.encode)(member.state, jnp.asarray(np.stack([image_a, image_b])))
  alphas = jnp.linspace(0.0, 1.0, num)[:, None]
  codes = (1 - alphas) * mu[0] + alphas * mu[1]
  return np.asarray(jax.device_get(jax.jit(member.objective.decode)(member.state, codes)))


def prior_samples(member: Member, rng: jax.Array, num: int) -> np.ndarray:
  """Decoder means of z ~ N(0, I), the same z for every copy of one latent size."""
  return np.asarray(jax.device_get(
      jax.jit(member.objective.sample, static_argnums=2)(member.state, rng, num)))


def save_rate_distortion(path: str, points: Sequence[Mapping[str, Any]]) -> str:
  """KL (rate) against reconstruction NLL (distortion) of every run and weight.

  Args:
    points: {"run", "tag", "kl", "nll", "elbo"} per copy (test means, nats).
  """
  plt = figures.plt
  fig, ax = plt.subplots(figsize=(5.6, 4.2))
  runs = sorted({p["run"] for p in points})
  markers = "osD^v"
  for r, run in enumerate(runs):
    sel = sorted((p for p in points if p["run"] == run), key=lambda p: p["kl"])
    ax.plot([p["kl"] for p in sel], [p["nll"] for p in sel], markers[r % 5] + ":", label=run)
    for p in sel:
      ax.annotate(p["tag"], (p["kl"], p["nll"]), textcoords="offset points", xytext=(4, 4),
                  fontsize=7)
  kl_max = max(max(p["kl"] for p in points), 1.0)
  ax.set_xscale("symlog", linthresh=1.0)
  ax.set_xlim(-0.2, kl_max * 2)
  ax.set_xlabel("rate: KL(q(z|x) || p(z)) (nats, test)")
  ax.set_ylabel("distortion: -E_q log p(x|z) (nats, test)")
  ax.set_title("rate vs distortion across KL weights")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return figures.save_figure(fig, path)


# ------------------------------------------------------------------ report
def results_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]], iwae_k: int) -> str:
  """Markdown table: one row per (run, KL weight)."""
  rows = []
  for run, by_tag in results.items():
    for tag, r in by_tag.items():
      b = r["likelihood"]["bounds"]
      elbo, iwae = b["elbo_nats"], b[f"iwae_{iwae_k}_nats"]
      lat = r["latents"]
      samples = r.get("samples")
      rows.append([
          run, tag, f"{elbo['negative_nats']:.2f} ± {elbo['nats_stderr']:.2f}",
          f"{iwae['negative_nats']:.2f} ± {iwae['nats_stderr']:.2f}",
          f"{b['nll_nats']['nats']:.2f}", f"{b['kl_nats']['nats']:.2f}",
          f"{lat['active_units']} / {lat['latent_dim']}",
          _fid_cell(samples) if samples else "-",
          f"{samples['precision']:.2f} / {samples['recall']:.2f}" if samples else "-"])
  return reporting.markdown_table(rows, [
      "run", "KL weight", "test -ELBO (nats)", f"test -IWAE-{iwae_k} (nats)",
      "NLL (nats)", "KL (nats)", "active units",
      "FID of prior samples (95% bootstrap interval)", "precision / recall"])


def _fid_cell(samples: Mapping[str, Any]) -> str:
  """The FID and its bootstrap interval, if it has one: "12.34 (11.80-12.90)"."""
  if "fid_interval" not in samples:
    return f"{samples['fid']:.2f}"
  low, high = samples["fid_interval"]
  return f"{samples['fid']:.2f} ({low:.2f}-{high:.2f})"


def explain(results: Mapping[str, Mapping[str, Mapping[str, Any]]],
            tags: Sequence[str], weights: Sequence[float]) -> list[str]:
  """Sentences that explain the effect of the KL weight, with the measured numbers.

  Every statement is derived from the numbers it quotes; comparisons that do not
  hold in the data are stated the way they came out.
  """
  by_weight = dict(zip(weights, tags))
  return [_explain_run(run, by_tag, by_weight, weights) for run, by_tag in results.items()]


def _measure(r: Mapping[str, Any], key: str) -> Any:
  """One number of a copy: active units, sample quality (or None), -ELBO, or a bound's nats."""
  if key == "active":
    return r["latents"]["active_units"]
  if key == "samples":
    return r.get("samples")
  if key == "elbo":
    return r["likelihood"]["bounds"]["elbo_nats"]["negative_nats"]
  return r["likelihood"]["bounds"][f"{key}_nats"]["nats"]


def _compare(value: float, reference: float, up: str, down: str) -> str:
  """`up` if `value` exceeds `reference`, else `down`."""
  return up if value > reference else down


def _explain_run(run: str, by_tag: Mapping[str, Mapping[str, Any]],
                 by_weight: Mapping[float, str], weights: Sequence[float]) -> str:
  """The paragraph on one run: weight 1, the heaviest weight, and weight 0."""
  def get(weight, key):
    return _measure(by_tag[by_weight[weight]], key)

  dim = next(iter(by_tag.values()))["latents"]["latent_dim"]
  parts = [f"**{run}.**"]
  if 1.0 in by_weight:
    parts.append(
        f"With weight 1 (the ELBO) the model spends {get(1.0, 'kl'):.1f} nats of KL on "
        f"{get(1.0, 'active')} of {dim} active units and reconstructs at "
        f"{get(1.0, 'nll'):.1f} nats; its test -ELBO is {get(1.0, 'elbo'):.1f} nats.")
  heavy = [w for w in weights if w > 1.0]
  if heavy and 1.0 in by_weight:
    parts.append(_heavy_weight_sentence(get, max(heavy), dim))
  if 0.0 in by_weight and 1.0 in by_weight:
    parts += _zero_weight_sentences(get)
  return " ".join(parts)


def _heavy_verdict(active: int, dim: int) -> str:
  """What `active` units of `dim` say about the code at a heavy KL weight."""
  if active == 0:
    return ("q(z|x) is the prior for every x, so the decoder gets no information "
            "about x and draws the same average image for any code it saw in "
            "training (see the prior samples); its reconstructions at the posterior "
            "mean z = 0 look different again, because codes drawn from N(0, I) in "
            f"{dim} dimensions lie near norm {dim ** 0.5:.1f}, and the decoder never "
            "saw the origin")
  if active <= max(1, dim // 10):
    return ("the decoder gets almost no information about x, so reconstructions "
            "fall back towards an average image")
  return "the code still carries some information"


def _heavy_weight_sentence(get, w: float, dim: int) -> str:
  """How the heaviest weight `w` compares with weight 1."""
  verdict = _heavy_verdict(get(w, "active"), dim)
  return (
      f"With weight {w:g} the KL "
      f"{_compare(get(w, 'kl'), get(1.0, 'kl'), 'rises', 'is pushed down')} "
      f"to {get(w, 'kl'):.2f} nats with {get(w, 'active')} active units ({verdict}); the "
      f"reconstruction NLL {_compare(get(w, 'nll'), get(1.0, 'nll'), 'rises', 'falls')} to "
      f"{get(w, 'nll'):.1f} nats and the test -ELBO "
      f"{_compare(get(w, 'elbo'), get(1.0, 'elbo'), 'worsens', 'improves')} to "
      f"{get(w, 'elbo'):.1f} nats.")


def _zero_weight_sentences(get) -> list[str]:
  """How weight 0 compares with weight 1, in bounds and (if measured) prior-sample FID."""
  ratio = get(0.0, "kl") / max(get(1.0, "kl"), 1e-9)
  parts = [
      f"With weight 0 nothing ties q(z|x) to the prior: the KL "
      f"{_compare(get(0.0, 'kl'), get(1.0, 'kl'), 'grows to', 'is')} "
      f"{get(0.0, 'kl'):.1f} nats ({ratio:.1f}x that of weight 1) while the "
      f"reconstruction NLL is {get(0.0, 'nll'):.1f} nats "
      f"({_compare(get(1.0, 'nll'), get(0.0, 'nll'), 'lower', 'not lower')} than weight "
      f"1's); the -ELBO is {get(0.0, 'elbo'):.1f} nats "
      f"({_compare(get(0.0, 'elbo'), get(1.0, 'elbo'), 'worse', 'better')} than weight 1's)."]
  at0, at1 = get(0.0, "samples"), get(1.0, "samples")
  if at0 is not None and at1 is not None:
    fids = (f"{sample_quality.describe_fid(at0)} at weight 0 against "
            f"{sample_quality.describe_fid(at1)} at weight 1")
    parts.append(
        f"Prior samples show the price: {fids}, since codes drawn from N(0, I) land where "
        f"the encoder never put data." if at0["fid"] > at1["fid"] else
        f"Prior samples: {fids}.")
  return parts
