"""Likelihood bounds of VAEs: the ELBO and the importance-weighted bound IWAE-k.

For an encoder q(z|x) = N(mu, diag(exp(logvar))), the prior p(z) = N(0, I) and a
decoder likelihood p(x|z),

  ELBO(x)   = E_q[log p(x|z)] - KL(q(z|x) || p(z))                (one z sample, analytic KL)
  IWAE_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i|x),  z_i ~ q(z|x)  (Burda et al., 2016)

E[IWAE_k] is non-decreasing in k, equals E[ELBO] at k = 1 and tends to log p(x). The k
samples are drawn in chunks under `lax.map`, with a running log-sum-exp per chunk, so
memory grows with the chunk (at most `max_decoder_batch` decoder inputs at once), not
with k: k = 5,000 fits wherever one training batch does.

Numbers come as means over examples with standard errors (std / sqrt(n)), in nats per
example and in bits per dimension. Gaussian likelihoods are densities: their bits/dim
add the 8-bit discretization term (`losses.discretization_nats`), as the training
metrics do, so they compare with the discrete likelihoods.
"""

import functools
import itertools
import math
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.evaluation import examples
from jaxgen.evaluation import progress
from jaxgen.objectives import base

Array = jax.Array
# nll_fn(z (B, D), images (B, ...)) -> -log p(x|z), (B,) nats.
NllFn = Callable[[Array, Array], Array]


class NoLikelihoodError(ValueError):
  """The model family has no likelihood bound (e.g. GANs, deterministic autoencoders)."""


def check_has_likelihood(objective: Any, metric: str = "ELBO") -> None:
  """Raises NoLikelihoodError unless `objective` is a `base.LatentVariableModel`.

  Args:
    objective: an `Objective`.
    metric: what was asked for, named in the message.
  """
  if isinstance(objective, base.LatentVariableModel):
    return
  family = type(objective).__name__
  if isinstance(objective, base.Autoencoder):
    raise NoLikelihoodError(
        f"The {metric} needs a stochastic encoder q(z|x) and a normalized decoder "
        f"likelihood p(x|z), but this {family} has neither a posterior nor a likelihood: "
        f"it trains a deterministic autoencoder (model with variational=False) or a VAE "
        f"with objective.likelihood='mse'. Use reconstruction-error scores, or train a VAE "
        f"with a likelihood ('bernoulli', 'gaussian' or 'discretized_logistic').")
  raise NoLikelihoodError(
      f"The {metric} needs an encoder q(z|x) and a decoder likelihood p(x|z), but "
      f"{family} has neither (GANs define no likelihood). Ask this model for "
      f"sample-quality metrics (FID, KID, precision/recall) instead.")


# ------------------------------------------------------------------ pure bounds
def _sum_last(x: Array) -> Array:
  return jnp.sum(x, axis=-1)


def standard_normal_log_prob(z: Array) -> Array:
  """log N(z; 0, I), summed over the last axis."""
  return _sum_last(losses.normal_log_prob(z, 0.0, 0.0))


def elbo_per_example(rng: Array, images: Array, mu: Array, logvar: Array,
                     nll_fn: NllFn) -> dict[str, Array]:
  """One-sample ELBO with the analytic KL, per example.

  Draws z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) from `rng`, exactly as the
  VAE models do, so with the same key it equals the training loop's `eval/elbo_nats`.

  Returns:
    {"elbo_nats", "nll_nats", "kl_nats"}, each (B,).
  """
  eps = jax.random.normal(rng, mu.shape, mu.dtype)
  z = mu + jnp.exp(0.5 * logvar) * eps
  nll = nll_fn(z, images)
  kl = losses.gaussian_kl(mu, logvar)
  return {"elbo_nats": -(nll + kl), "nll_nats": nll, "kl_nats": kl}


def iwae_per_example(rng: Array, images: Array, mu: Array, logvar: Array,
                     nll_fn: NllFn, num_samples: int,
                     max_decoder_batch: int = 4096) -> Array:
  """The IWAE-k bound log (1/k) sum_i p(x, z_i) / q(z_i|x) per example, in nats.

  Samples are drawn `chunk = max(1, max_decoder_batch // B)` at a time under
  `lax.map`; each chunk keeps only its log-sum-exp, so memory is bounded by the
  chunk whatever k is.

  Args:
    rng: key; chunk c uses fold_in(rng, c).
    images: (B, ...) images.
    mu: (B, D) posterior means.
    logvar: (B, D) posterior log-variances.
    nll_fn: -log p(x|z) for (B, D) codes and the (B, ...) images.
    num_samples: k >= 1.
    max_decoder_batch: most decoder inputs per chunk (samples x examples).

  Returns:
    (B,) IWAE-k values.
  """
  if num_samples < 1:
    raise ValueError(f"IWAE needs num_samples >= 1, got {num_samples}.")
  batch = mu.shape[0]
  chunk = int(min(num_samples, max(1, max_decoder_batch // max(batch, 1))))
  num_chunks = -(-num_samples // chunk)
  std = jnp.exp(0.5 * logvar)

  def chunk_logsumexp(index):
    eps = jax.random.normal(jax.random.fold_in(rng, index), (chunk,) + mu.shape, mu.dtype)
    z = mu + std * eps                                              # (chunk, B, D)
    # z = mu + std * eps: q(z|x) = N(eps; 0, I) / prod(std).
    log_q = _sum_last(losses.normal_log_prob(eps, 0.0, 0.0) - 0.5 * logvar)
    log_prior = standard_normal_log_prob(z)
    log_px = -jax.vmap(lambda codes: nll_fn(codes, images))(z)       # (chunk, B)
    log_w = log_px + log_prior - log_q
    # The last chunk may run past k: its extra samples get zero weight.
    taken = index * chunk + jnp.arange(chunk) < num_samples
    log_w = jnp.where(taken[:, None], log_w, -jnp.inf)
    return jax.nn.logsumexp(log_w, axis=0)

  per_chunk = jax.lax.map(chunk_logsumexp, jnp.arange(num_chunks))  # (num_chunks, B)
  return jax.nn.logsumexp(per_chunk, axis=0) - math.log(num_samples)


# ------------------------------------------------------------------ over a split
def make_bounds_fn(objective: Any, num_samples: Sequence[int] = (),
                   max_decoder_batch: int = 4096) -> Callable[[Any, Array, Array], dict]:
  """A jitted `fn(state, images, rng) -> {metric: (B,) array}` for one batch.

  Metrics: elbo_nats, nll_nats, kl_nats and iwae_<k>_nats for each k in `num_samples`.

  Raises:
    NoLikelihoodError: the family has no likelihood bound.
  """
  check_has_likelihood(objective, "ELBO" if not num_samples else "IWAE bound")
  num_samples = tuple(int(k) for k in num_samples)

  @jax.jit
  def bounds(state, images, rng):
    mu, logvar = objective.encode(state, images, jax.random.fold_in(rng, 1))
    nll_fn = functools.partial(objective.decoder_nll, state)
    elbo_rng, iwae_rng = jax.random.split(rng)
    out = elbo_per_example(elbo_rng, images, mu, logvar, nll_fn)
    for k in num_samples:
      out[f"iwae_{k}_nats"] = iwae_per_example(jax.random.fold_in(iwae_rng, k), images, mu,
                                               logvar, nll_fn, k, max_decoder_batch)
    return out

  return bounds


def per_example_bounds(objective: Any, state: Any, batches: Iterable[dict[str, np.ndarray]],
                       rng: Array, num_samples: Sequence[int] = (),
                       max_examples: int | None = None, max_decoder_batch: int = 4096,
                       num_batches: int | None = None) -> dict[str, np.ndarray]:
  """ELBO and IWAE-k of every (unpadded) example of `batches`.

  Args:
    objective: a `base.LatentVariableModel`.
    state: its (restored) state.
    batches: eval batches with "image", "mask" (and "label"), e.g. from
      `data.make_eval_batches`.
    rng: key; batch i uses fold_in(rng, i).
    num_samples: the k of each IWAE-k bound wanted.
    max_examples: stop after this many examples (None = all).
    max_decoder_batch: see `iwae_per_example`.
    num_batches: how many batches there are, for the progress line (None = unknown).

  Returns:
    {metric: (N,) float64 array} plus "label" (N,) when the batches carry labels.
  """
  bounds = make_bounds_fn(objective, num_samples, max_decoder_batch)
  what = "ELBO" + "".join(f", IWAE-{k}" for k in num_samples)

  def bounds_of_batch(i, batch):
    values = jax.device_get(bounds(state, jnp.asarray(batch["image"]),
                                   jax.random.fold_in(rng, i)))
    return {**values, "label": batch.get("label")}

  out = examples.collect(progress.track(batches, num_batches, f"{what} bounds"),
                         bounds_of_batch, max_examples)
  return {k: (v if k == "label" else v.astype(np.float64)) for k, v in out.items()}


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
  """Mean and its standard error std(ddof=1) / sqrt(n) (0 for a single value)."""
  values = np.asarray(values, np.float64)
  if values.size < 2:
    return float(values.mean()), 0.0
  return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def summarize_bounds(per_example: dict[str, np.ndarray], num_dims: int,
                     offset_nats: float | None = 0.0) -> dict[str, dict[str, float]]:
  """Means with standard errors in nats and bits/dim for each bound.

  Args:
    per_example: from `per_example_bounds`.
    num_dims: dimensions per example (H * W * C).
    offset_nats: added to each negative bound before bits/dim (densities); None: no
      bits/dim (the bound is not a likelihood of the data's values).

  Returns:
    {bound name: {"nats", "nats_stderr", "negative_nats", "bits_per_dim",
    "bits_per_dim_stderr", "num_examples"}} for elbo_nats and every iwae_<k>_nats (no
    bits/dim when `offset_nats` is None); the
    bound itself is "nats" (negative), its negative "negative_nats" (the usual loss).
  """
  summary = {}
  for name, values in per_example.items():
    if name == "label":
      continue
    mean, stderr = mean_and_stderr(values)
    entry = {"nats": mean, "nats_stderr": stderr, "num_examples": int(values.size)}
    if name == "elbo_nats" or name.startswith("iwae_"):
      entry["negative_nats"] = -mean
      if offset_nats is not None:
        entry["bits_per_dim"] = float(losses.bits_per_dim(offset_nats - mean, num_dims))
        entry["bits_per_dim_stderr"] = float(losses.bits_per_dim(stderr, num_dims))
    summary[name] = entry
  return summary


def likelihood_report(objective: Any, state: Any, batches: Iterable[dict[str, np.ndarray]],
                      rng: Array, num_samples: Sequence[int] = (1000,),
                      max_examples: int | None = None, max_decoder_batch: int = 4096,
                      num_batches: int | None = None) -> dict[str, Any]:
  """ELBO and IWAE-k summaries over a split, ready for eval.json.

  Returns:
    {"likelihood": name, "num_dims", "bounds": `summarize_bounds(...)`,
    "iwae_gap_nats": {k: IWAE_k - ELBO}}.
  """
  check_has_likelihood(objective, "ELBO" if not num_samples else "IWAE bound")
  batches = iter(batches)
  first = next(batches, None)
  if first is None:
    raise ValueError("No examples to evaluate: the batches were empty.")
  num_dims = int(math.prod(np.shape(first["image"])[1:]))
  per_example = per_example_bounds(objective, state, itertools.chain([first], batches), rng,
                                   num_samples, max_examples, max_decoder_batch, num_batches)
  summary = summarize_bounds(per_example, num_dims, objective.discretization_nats(num_dims))
  return {
      "likelihood": objective.likelihood,
      "num_dims": num_dims,
      "bounds": summary,
      "iwae_gap_nats": {str(k): summary[f"iwae_{k}_nats"]["nats"] - summary["elbo_nats"]["nats"]
                        for k in num_samples},
  }
