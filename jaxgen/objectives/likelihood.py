"""The `likelihood` family: a full-covariance Gaussian baseline with an exact test NLL.

The model is a density over *dequantized* pixels. An 8-bit pixel k in {0..255} becomes
y = (k + u) / 256, u ~ U[0, 1), mapped to the data's scale (the preprocessing's [0, 1]
or [-1, 1]). The reported NLL is

  dequantized_nll_nats = E_u[-log p(y)] + D * log(256 / data_range),

the usual uniform-dequantization bound on the NLL of the 8-bit image (the second term is
the change of variables from bins of width data_range / 256 to probabilities). It is on
the 8-bit scale on which `losses.discretization_nats` puts the Gaussian-likelihood VAEs'
`bits_per_dim`. (A Bernoulli likelihood of grey levels is not a distribution over the 256
levels, so Bernoulli VAEs' bits/dim are not on this scale.) E_u is computed in closed
form (`Gaussian.expected_log_prob`), so it is exact and needs no noise samples.

Two fits, one parameterisation (mean and Cholesky factor of the covariance):
  * `closed_form` (default): the maximum-likelihood mean and covariance, streamed over
    the training split in float64 (`StreamingMoments`), then regularised. The loop calls
    `initial_fit`; with `train.num_steps=0` it only evaluates and checkpoints the fit.
  * `gradient`: Adam on the expected dequantized NLL through the ordinary loop. Its
    optimum is the closed-form fit for `covariance` 'none' and 'eps' (tests check that
    they agree); in 784 dimensions it gets there slowly.

Raw MNIST pixels have a singular covariance (border pixels never change). The
dequantization noise alone makes it invertible but badly conditioned, so the config
picks a regularisation (`objective.covariance`):
  * 'none':        Sigma = Cov(y), the MLE of the dequantized training pixels;
  * 'eps':         Sigma = Cov(y) + eps * data_range^2 * I (eps in [0, 1]-pixel units);
  * 'ledoit_wolf': Cov(y) shrunk towards a scaled identity with the Ledoit-Wolf
                   coefficient of the training pixels (scikit-learn's estimator,
                   computed from streamed moments).
"""

from typing import Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import figures
from jaxgen import losses
from jaxgen import models
from jaxgen import registry
from jaxgen import value_range
from jaxgen.models import gaussian as gaussian_lib
from jaxgen.models import param_init
from jaxgen.objectives import base

FITS = ("closed_form", "gradient")
COVARIANCES = ("none", "eps", "ledoit_wolf")
SAMPLE_VARIANTS = ("full", "temperature", "diagonal", "top_k")
NUM_LEVELS = 256


class StreamingMoments:
  """Sums for the mean, covariance and Ledoit-Wolf shrinkage, accumulated in float64.

  Holds n, sum x, sum x x^T, sum |x|^2 x and sum |x|^4 over flattened examples, so a
  data set that does not fit in memory is read once, batch by batch. JAX's float64 is
  off by default, hence numpy.
  """

  def __init__(self, num_dims: int):
    self.num_dims = num_dims
    self.count = 0
    self.sum = np.zeros(num_dims)
    self.sum_outer = np.zeros((num_dims, num_dims))
    self.sum_sq_norm_times_x = np.zeros(num_dims)
    self.sum_fourth_power_norm = 0.0

  def update(self, images: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Adds the examples of a batch whose mask is nonzero (all if `mask` is None)."""
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    if x.shape[1] != self.num_dims:
      raise ValueError(f"StreamingMoments expects examples of {self.num_dims} values, "
                       f"got {x.shape[1]}.")
    if mask is not None:
      x = x[np.asarray(mask).reshape(-1) > 0]
    sq_norm = np.einsum("nd,nd->n", x, x)
    self.count += len(x)
    self.sum += x.sum(axis=0)
    self.sum_outer += x.T @ x
    self.sum_sq_norm_times_x += sq_norm @ x
    self.sum_fourth_power_norm += float(np.sum(sq_norm**2))

  def _check_count(self) -> None:
    if self.count < 2:
      raise ValueError(f"A covariance needs at least 2 examples; the training split gave "
                       f"{self.count}. Check data.train_split.")

  @property
  def mean(self) -> np.ndarray:
    self._check_count()
    return self.sum / self.count

  @property
  def covariance(self) -> np.ndarray:
    """The maximum-likelihood covariance (normalised by n, as numpy.cov(bias=True))."""
    mean = self.mean
    return self.sum_outer / self.count - np.outer(mean, mean)

  def ledoit_wolf_shrinkage(self) -> float:
    """The Ledoit-Wolf shrinkage coefficient, as sklearn.covariance.ledoit_wolf_shrinkage.

    scikit-learn needs the data matrix; its two data-dependent sums are recovered
    here from the streamed moments: sum_k |x_k - m|^4 (expanded in uncentred sums) and
    |S|_F^2.
    """
    n, p = self.count, self.num_dims
    if p == 1:
      return 0.0
    mean, cov = self.mean, self.covariance
    a, c = self.sum_outer.trace(), mean @ mean      # sum |x|^2 and |m|^2
    centred_fourth = (self.sum_fourth_power_norm
                      - 4.0 * mean @ self.sum_sq_norm_times_x
                      + 4.0 * mean @ self.sum_outer @ mean
                      + 2.0 * c * a - 4.0 * c * (mean @ self.sum) + n * c**2)
    mu = cov.trace() / p
    frob_sq = float(np.sum(cov**2))
    beta = (centred_fourth / n - frob_sq) / (p * n)
    delta = (frob_sq - 2.0 * mu * cov.trace() + p * mu**2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def _eight_bit_range(config: ml_collections.ConfigDict) -> value_range.ValueRange:
  data = value_range.of_data(config.data)
  if data.levels != NUM_LEVELS:
    raise errors.ConfigError(
        f"objective.name='likelihood' models 8-bit grey levels, but data.preprocessing="
        f"{data.preprocessing!r} does not keep them; use data.preprocessing='symmetric' "
        f"(or 'unit').")
  return data


class LikelihoodObjective(base.Objective):
  """The Gaussian baseline: closed-form or gradient fit, dequantized NLL (a bound).

  Config fields (`config.objective`): fit ('closed_form' | 'gradient'), covariance
  ('none' | 'eps' | 'ledoit_wolf'), eps (variance added to the diagonal in [0, 1]-pixel
  units when covariance='eps'), sample_variants (subset of SAMPLE_VARIANTS drawn as
  figures), sample_temperature (std multiplier of the 'temperature' variant), top_k
  (principal components kept by 'top_k'), num_variant_samples (images per variant).
  `config.model` must name the `gaussian` model.
  """

  guarded_metrics = ("loss", "grad_norm")
  headline_metric = "dequantized_nll_nats"
  # Optional `objective.*` fields and their defaults.
  FIELD_DEFAULTS = {"fit": "closed_form", "covariance": "ledoit_wolf", "eps": 1e-2,
                    "sample_variants": SAMPLE_VARIANTS, "sample_temperature": 0.5, "top_k": 20,
                    "num_variant_samples": 50}

  def __init__(self, config: ml_collections.ConfigDict):
    model_fields = models.module_fields(config.model)
    if "image_shape" in model_fields:
      model_fields["image_shape"] = tuple(model_fields["image_shape"])
    self.model = models.get_model(config.model.name, **model_fields)
    if not isinstance(self.model, gaussian_lib.Gaussian):
      raise errors.ConfigError(f"objective.name='likelihood' needs model.name='gaussian', got "
                               f"model.name={config.model.name!r}.")
    param_init.only_flax(config.model, "the Gaussian has no Dense or conv layers (its mean "
                                       "and scale start at zero), so 'torch' would change "
                                       "nothing")
    self.num_dims = self.model.num_dims
    obj = config_lib.with_defaults(config.objective, self.FIELD_DEFAULTS)
    self.fit = registry.lookup("fit", obj.fit,
                               {k: k for k in FITS}, "objective.fit")
    self.covariance_kind = registry.lookup(
        "covariance regularisation", obj.covariance,
        {k: k for k in COVARIANCES}, "objective.covariance")
    self.eps = float(obj.eps)
    if self.covariance_kind == "eps" and not self.eps > 0:
      raise errors.ConfigError(f"objective.eps must be > 0 with objective.covariance='eps', got "
                               f"{self.eps}.")
    if self.fit == "gradient" and self.covariance_kind == "ledoit_wolf":
      raise errors.ConfigError(
          "objective.fit='gradient' cannot use objective.covariance='ledoit_wolf': the "
          "shrinkage is estimated from the whole training set, not a loss. Use "
          "objective.fit='closed_form', or objective.covariance='eps' or 'none'.")
    self.needs_initial_fit = self.fit == "closed_form"
    self.sample_description = "draws from the fitted Gaussian, clipped to the data range"
    self.sample_variants = tuple(
        registry.lookup("covariance variant", v, {k: k for k in SAMPLE_VARIANTS},
                        "objective.sample_variants")
        for v in obj.sample_variants)
    self.temperature = float(obj.sample_temperature)
    if not self.temperature > 0:
      raise errors.ConfigError(
          f"objective.sample_temperature must be > 0, got {self.temperature}.")
    self.top_k = int(obj.top_k)
    if not 1 <= self.top_k <= self.num_dims:
      raise errors.ConfigError(f"objective.top_k must be in [1, {self.num_dims}] (the number of "
                               f"pixels), got {self.top_k}.")
    self.num_variant_samples = int(obj.num_variant_samples)
    self.value_range = _eight_bit_range(config)
    self.low, self.data_range = self.value_range.low, self.value_range.width
    self.bin_width = self.data_range / NUM_LEVELS
    # Var(bin_width * u) for u ~ U[0, 1): the dequantization noise per pixel.
    self.noise_var = self.bin_width**2 / 12.0
    self.eps_var = self.eps * self.data_range**2 if self.covariance_kind == "eps" else 0.0
    self.tx = base.make_optimizer(config.optimizer)

  # ---------------------------------------------------------------- dequantization
  def dequantize(self, images: jax.Array, u: jax.Array) -> jax.Array:
    """Maps pixels k / 255 (on the data's scale) to (k + u) / 256 on the same scale."""
    return (self.low + (NUM_LEVELS - 1) / NUM_LEVELS * (images - self.low)
            + self.bin_width * u)

  def _dequantized_mean(self, images: jax.Array) -> jax.Array:
    return self.dequantize(images, 0.5)

  def _to_unit(self, images: jax.Array) -> jax.Array:
    return jnp.clip(self.value_range.to_unit(images), 0.0, 1.0)

  @property
  def discretization_nats(self) -> float:
    return losses.discretization_nats(self.num_dims, self.data_range, NUM_LEVELS)

  # ---------------------------------------------------------------- state
  def init_state(self, rng, example_batch):
    variables = self.model.init(rng, example_batch["image"])
    return base.TrainState.create(
        apply_fn=self.model.apply, params={"model": variables["params"]}, tx=self.tx,
        # Recorded by the closed-form fit (kept in checkpoints for reports).
        model_state={"shrinkage": jnp.zeros((), jnp.float32),
                     "num_fit_examples": jnp.zeros((), jnp.float32)})

  def _apply(self, params, *args, method=None):
    return self.model.apply({"params": params["model"]}, *args,
                            method=getattr(self.model, method) if method else None)

  # ---------------------------------------------------------------- losses
  def _nll_terms(self, params, images):
    """(-log N(E_u y), tr(Sigma^-1)) per example; E_u[-log p(y)] = a + noise_var / 2 * b."""
    neg_log_prob = -self._apply(params, self._dequantized_mean(images))
    return neg_log_prob, self._apply(params, method="trace_precision")

  def _metrics(self, neg_log_prob, trace_precision):
    density_nll = neg_log_prob + 0.5 * self.noise_var * trace_precision
    nll = density_nll + self.discretization_nats
    return {
        "dequantized_nll_nats": nll,
        "bits_per_dim": losses.bits_per_dim(nll, self.num_dims),
        # 'eps' enters the loss as extra isotropic noise: its optimum is Cov(y) + eps I.
        "loss": density_nll + 0.5 * self.eps_var * trace_precision,
    }

  def metric_names(self):
    return frozenset({"dequantized_nll_nats", "bits_per_dim", "loss", "grad_norm"})

  def train_step(self, state, batch, rng):
    del rng  # The expectation over the dequantization noise is exact.
    images = batch["image"]

    def loss_fn(params):
      metrics = self._metrics(*self._nll_terms(params, images))
      return jnp.mean(metrics["loss"]), metrics

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {k: jnp.mean(v) for k, v in metrics.items()}
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.tree.norm(grads)  # optax.global_norm's current name
    return state.apply_gradients(grads=grads), metrics

  def eval_step(self, state, batch, rng):
    del rng
    neg_log_prob, trace_precision = self._nll_terms(state.params, batch["image"])
    return self._metrics(neg_log_prob, trace_precision)

  def dequantized_nll(self, state, images: jax.Array, u: jax.Array) -> jax.Array:
    """-log p((k + u) / 256) + D log(256 / data_range) per example for given noise `u`.

    The eval metric is this averaged over u ~ U[0, 1)^D, computed in closed form.

    Args:
      state: the state.
      images: (B, H, W, C) preprocessed images (pixels k / 255 on the data's scale).
      u: noise in [0, 1) of the same shape.

    Returns:
      (B,) NLL in nats on the 8-bit scale.
    """
    return -self._apply(state.params, self.dequantize(images, u)) + self.discretization_nats

  # ---------------------------------------------------------------- closed-form fit
  def closed_form_fit(self, moments: StreamingMoments) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and regularised covariance of dequantized pixels from streamed moments.

    With y = low + a (x - low) + bin_width * u, a = 255/256: E y = low + a (m - low) +
    bin_width / 2 and Cov y = a^2 S + noise_var I for the training pixels' mean m and
    MLE covariance S.

    Returns:
      (mean (D,), covariance (D, D), Ledoit-Wolf shrinkage or 0.0), float64.
    """
    a = (NUM_LEVELS - 1) / NUM_LEVELS
    mean = self.low + a * (moments.mean - self.low) + self.bin_width / 2
    cov = a**2 * moments.covariance + self.noise_var * np.eye(self.num_dims)
    shrinkage = 0.0
    if self.covariance_kind == "eps":
      cov = cov + self.eps_var * np.eye(self.num_dims)
    elif self.covariance_kind == "ledoit_wolf":
      from sklearn import covariance as sk_covariance
      shrinkage = moments.ledoit_wolf_shrinkage()
      cov = sk_covariance.shrunk_covariance(cov, shrinkage)
    return mean, cov, shrinkage

  def initial_fit(self, state, batches: Iterable[dict[str, np.ndarray]]):
    moments = StreamingMoments(self.num_dims)
    for batch in batches:
      moments.update(batch["image"], batch.get("mask"))
    mean, cov, shrinkage = self.closed_form_fit(moments)
    try:
      scale_tril = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
      raise errors.ConfigError(
          f"The fitted covariance (objective.covariance={self.covariance_kind!r}) is not "
          f"positive definite in float64; use objective.covariance='eps' with a larger "
          f"objective.eps, or 'ledoit_wolf'.") from None
    raw = np.tril(scale_tril, -1) + np.diag(np.log(np.diag(scale_tril)))
    params = {"model": {"mean": mean.astype(np.float32),
                        "scale_tril_raw": raw.astype(np.float32)}}
    fit_info = {"shrinkage": np.float32(shrinkage),
                "num_fit_examples": np.float32(moments.count)}
    # Keep the placement of the state the loop created (replicated over the mesh).
    params = jax.device_put(params, jax.tree_util.tree_map(lambda x: x.sharding, state.params))
    fit_info = jax.device_put(fit_info, jax.tree_util.tree_map(lambda x: x.sharding,
                                                                state.model_state))
    return state.replace(params=params, model_state=fit_info)

  # ---------------------------------------------------------------- samples
  def mean_and_covariance(self, state) -> tuple[jax.Array, jax.Array]:
    """The density's mean image (H, W, C) and covariance (D, D), on the data's scale."""
    mean = state.params["model"]["mean"].reshape(self.model.image_shape)
    return mean, self._apply(state.params, method="covariance")

  def sample(self, state, rng, num):
    return self._to_unit(self._apply(state.params, rng, num, method="sample"))

  def variant_factor(self, state, variant: str) -> jax.Array:
    """A (D, D) matrix A with A A^T the covariance of a sampling variant.

    Args:
      state: the state.
      variant: 'full' (Sigma = L L^T itself: A = L), 'temperature'
        (sample_temperature^2 * Sigma), 'diagonal' (diag(Sigma): independent pixels),
        'top_k' (Sigma restricted to its top_k principal components).

    Raises:
      ValueError: an unknown variant (lists the known ones).
    """
    variant = registry.lookup("covariance variant", variant,
                              {k: k for k in SAMPLE_VARIANTS}, "objective.sample_variants")
    scale_tril = gaussian_lib.scale_tril_from_raw(state.params["model"]["scale_tril_raw"])
    if variant == "full":
      return scale_tril
    if variant == "temperature":
      return self.temperature * scale_tril
    if variant == "diagonal":
      return jnp.diag(jnp.sqrt(jnp.sum(scale_tril**2, axis=1)))
    eigvals, eigvecs = jnp.linalg.eigh(scale_tril @ scale_tril.T)  # ascending
    keep = jnp.arange(self.num_dims) >= self.num_dims - self.top_k
    return eigvecs * jnp.where(keep, jnp.sqrt(jnp.maximum(eigvals, 0.0)), 0.0)

  def sample_variant(self, state, rng: jax.Array, num: int, variant: str) -> jax.Array:
    """`num` samples mean + A z, z ~ N(0, I), for A = `variant_factor(state, variant)`.

    Returns:
      (num, H, W, C) images in [0, 1] (clipped).
    """
    factor = self.variant_factor(state, variant)
    z = jax.random.normal(rng, (num, self.num_dims))
    flat = state.params["model"]["mean"] + z @ factor.T
    return self._to_unit(flat.reshape(num, *self.model.image_shape))

  def _variant_title(self, variant: str, cov: np.ndarray) -> str:
    if variant == "temperature":
      return f"samples, temperature {self.temperature:g} (covariance x {self.temperature**2:g})"
    if variant == "diagonal":
      return "samples, diagonal covariance (independent pixels)"
    if variant == "top_k":
      eigvals = np.linalg.eigvalsh(cov)
      share = eigvals[-self.top_k:].sum() / eigvals.sum()
      return f"samples, top {self.top_k} principal components ({share:.0%} of the variance)"
    return "samples from N(mean, Sigma)"

  def extra_figures(self, state, rng, images):
    del images
    import matplotlib
    mean, cov = jax.device_get(self.mean_and_covariance(state))
    cov = np.asarray(cov, np.float64) / self.data_range**2  # [0, 1]-pixel units
    out = {"mean": (np.asarray(self._to_unit(mean))[None], 1, "mean image")}
    # Only a matrix that fits the largest figure at the readable scale (24 in x 100 dpi /
    # 2 px per entry = 1,200 entries a side).
    readable = figures.MAX_IMAGE_INCHES * figures.DPI / figures.MIN_PIXELS_PER_IMAGE_PIXEL
    if self.num_dims <= readable:
      limit = float(np.abs(cov).max()) or 1.0
      rgb = matplotlib.colormaps["RdBu_r"]((cov / limit + 1.0) / 2.0)[..., :3]
      out["covariance"] = (rgb[None].astype(np.float32), 1,
                           f"covariance ([0,1] pixel units; blue -{limit:.3g}, "
                           f"white 0, red +{limit:.3g})")
    for i, variant in enumerate(self.sample_variants):
      samples = self.sample_variant(state, jax.random.fold_in(rng, i),
                                    self.num_variant_samples, variant)
      out[f"samples_{variant}"] = (np.asarray(samples), 10, self._variant_title(variant, cov))
    return out

  def num_params(self, state):
    """Free parameters: D for the mean and D (D + 1) / 2 for the Cholesky factor."""
    return self.num_dims + self.num_dims * (self.num_dims + 1) // 2
