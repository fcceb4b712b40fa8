"""Edits of latent codes and the figures that show them (autoencoders and VAEs).

Works with any `base.Autoencoder` (`encode`, `decode`): VAEs use the posterior mean as
the code. Originals are shown on [0, 1] through the objective's `value_range`.

Edits:
  * noise mixing: code <- (1 - a) * code + a * noise, with ONE noise vector shared by
    all images (so a column of the figure shows every face pulled towards the same
    point). a = 0 gives the plain reconstruction; a = 1 decodes the noise alone, the
    same image whatever the input.
  * element edits: set chosen code elements to mean +/- k standard deviations of that
    element over a set of codes (the other elements untouched).

Figures: `edit_grid` lays out original | reconstruction | edits, one row per image;
`posterior_reconstruction_grid` shows originals in the first column, the reconstruction
from the posterior mean, then decodes of posterior samples; `latent_traversal_grid`
decodes a grid over two latent dimensions (Kingma & Welling's manifold figure).
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats


DEFAULT_ALPHAS = (0.2, 0.5, 0.8)


def mix_with_noise(codes: jax.Array, noise: jax.Array, alpha: float) -> jax.Array:
  """(1 - alpha) * codes + alpha * noise, the one noise vector broadcast over the batch.

  Args:
    codes: (B, D) latent codes.
    noise: (D,) one noise vector shared by every code.
    alpha: mixing weight in [0, 1].

  Returns:
    (B, D) mixed codes.
  """
  codes, noise = jnp.asarray(codes), jnp.asarray(noise)
  if noise.shape != codes.shape[1:]:
    raise ValueError(f"mix_with_noise needs one noise vector of shape {codes.shape[1:]} "
                     f"shared by all codes, got {noise.shape}.")
  return (1.0 - alpha) * codes + alpha * noise[None, :]


def code_statistics(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-element mean and standard deviation of (N, D) codes."""
  codes = np.asarray(codes, np.float64)
  return codes.mean(axis=0).astype(np.float32), codes.std(axis=0).astype(np.float32)


def shared_noise(rng: jax.Array, mean: np.ndarray, std: np.ndarray) -> jax.Array:
  """One noise vector mean + std * eps, eps ~ N(0, I): noise on the codes' own scale."""
  return jnp.asarray(mean) + jnp.asarray(std) * jax.random.normal(rng, np.shape(mean))


def set_elements(codes: jax.Array, indices: Sequence[int],
                 values: Sequence[float]) -> jax.Array:
  """Returns `codes` with element `indices[i]` of every code set to `values[i]`."""
  codes = jnp.asarray(codes)
  for index, value in zip(indices, values):
    codes = codes.at[:, index].set(value)
  return codes


def most_variable_elements(std: np.ndarray, num: int = 2) -> tuple[int, ...]:
  """Indices of the `num` code elements with the largest standard deviation."""
  return tuple(int(i) for i in np.argsort(-np.asarray(std))[:num])


def latent_codes(objective: Any, state: Any, images: Any) -> jax.Array:
  """The deterministic codes of `images`: posterior means, or an autoencoder's codes."""
  return jax.jit(objective.encode)(state, jnp.asarray(images))[0]


def edit_grid(objective: Any, state: Any, images: np.ndarray, rng: jax.Array, mean: np.ndarray, std: np.ndarray,
              alphas: Sequence[float] = DEFAULT_ALPHAS,
              indices: Sequence[int] | None = None, k: float = 3.0
              ) -> tuple[np.ndarray, list[str]]:
  """Original | reconstruction | noise mixes | element edits, one row per image.

  Args:
    objective: an autoencoding objective.
    state: its trained state.
    images: (B, H, W, C) preprocessed images.
    rng: key of the one shared noise vector.
    mean, std: per-element code statistics (e.g. `code_statistics` of test codes).
    alphas: noise mixing weights.
    indices: the two (or more) code elements to edit; default: the most variable.
    k: edits set an element to mean +/- k * std.

  Returns:
    (grid images in [0, 1], (B * columns, H, W, C) row by row; column titles).
  """
  indices = tuple(indices) if indices is not None else most_variable_elements(std)
  decode = jax.jit(objective.decode)  # One compile for every column.
  codes = latent_codes(objective, state, images)
  noise = shared_noise(rng, mean, std)
  columns = [objective.value_range.to_unit(np.asarray(images, np.float32)),
             decode(state, codes)]
  titles = ["original", "reconstruction"]
  for alpha in alphas:
    columns.append(decode(state, mix_with_noise(codes, noise, alpha)))
    titles.append(f"noise a={alpha:g}")
  for index in indices:
    for sign in (1.0, -1.0):
      value = float(mean[index] + sign * k * std[index])
      columns.append(decode(state, set_elements(codes, [index], [value])))
      titles.append(f"z[{index}]={'+' if sign > 0 else '-'}{k:g}sd")
  grid = np.stack([np.asarray(jax.device_get(c)) for c in columns], axis=1)
  return grid.reshape(-1, *grid.shape[2:]), titles


def posterior_reconstruction_grid(objective: Any, state: Any, images: np.ndarray,
                                  rng: jax.Array,
                                  num_samples: int = 4) -> np.ndarray:
  """Rows: original | decode(posterior mean) | decodes of `num_samples` z ~ q(z|x).

  Returns:
    (B * (2 + num_samples), H, W, C) images in [0, 1], row by row.
  """
  images = jnp.asarray(images)
  decode = jax.jit(objective.decode)
  mu, logvar = jax.jit(objective.encode)(state, images)
  columns = [objective.value_range.to_unit(np.asarray(images, np.float32)),
             decode(state, mu)]
  for key in jax.random.split(rng, num_samples):
    eps = jax.random.normal(key, mu.shape)
    columns.append(decode(state, mu + jnp.exp(0.5 * logvar) * eps))
  grid = np.stack([np.asarray(jax.device_get(c)) for c in columns], axis=1)
  return grid.reshape(-1, *grid.shape[2:])


def latent_traversal_grid(objective: Any, state: Any, dims: Sequence[int] = (0, 1),
                          num: int = 10, latent_dim: int | None = None,
                          low: float = 0.05, high: float = 0.95) -> np.ndarray:
  """Decodes a num x num grid over two latent dimensions; others stay at 0.

  Values are the standard normal quantiles of linspace(low, high, num), so the grid
  covers the prior's mass evenly (Kingma & Welling, 2014, figure 4). Rows vary dims[0]
  (top = low), columns dims[1].

  Returns:
    (num * num, H, W, C) images in [0, 1], row by row.
  """
  latent_dim = latent_dim or objective.latent_dim
  if len(dims) != 2 or max(dims) >= latent_dim:
    raise ValueError(f"latent_traversal_grid needs two dims below latent_dim={latent_dim}, "
                     f"got {tuple(dims)}.")
  values = stats.norm.ppf(np.linspace(low, high, num)).astype(np.float32)
  z = np.zeros((num, num, latent_dim), np.float32)
  z[:, :, dims[0]] = values[:, None]
  z[:, :, dims[1]] = values[None, :]
  decoded = jax.jit(objective.decode)(state, jnp.asarray(z.reshape(-1, latent_dim)))
  return np.asarray(jax.device_get(decoded))
