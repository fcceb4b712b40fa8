"""The `adversarial` family: DCGAN, AC-GAN and InfoGAN behind the Objective interface.

Each training step makes `objective.d_steps` discriminator updates (on the step's real
batch, fresh fakes each time) and then `objective.g_steps` generator updates. Both
networks, both optimizer states, the BatchNorm statistics and the optional EMA of the
generator live in one `GANState` pytree, so the loop checkpoints, resumes and shards it
like any other state.

Losses (per example, in nats for the BCE form; all from `jaxgen.losses`):
  * `nonsaturating` (default): D minimises BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0),
    G minimises BCE(D(G(z)), 1) = softplus(-D(G(z))) (Goodfellow et al., 2014).
  * `hinge`: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).
Auxiliary heads (`objective.auxiliary`):
  * `acgan` (Odena et al., 2017): D's class head is trained with the cross-entropy of real
    images against their labels and of fakes against the labels they were generated from;
    G adds the fakes' cross-entropy. Computed from logits with log-softmax.
  * `infogan` (Chen et al., 2016): G's input holds categorical codes (one-hot) and
    continuous codes ~ U[-1, 1]; the head Q on D's trunk predicts them. G and Q minimise
    together the adversarial loss plus info_weight * categorical cross-entropy +
    continuous_weight * Gaussian NLL (a lower bound on the mutual information I(c; G(z, c))).
    Q's parameters are updated with G's optimizer. With `objective.info_in_d_step` (the
    default, as in the original InfoGAN code) D's update adds the same terms on its fakes,
    so the shared trunk also learns features that recover the codes (Q's head is held
    fixed there).

Metrics (train: batch means of the last D and G update of the step; eval: per example on
the split's real images and as many fakes): d_loss_real, d_loss_fake, d_loss (with the
auxiliary terms in D's update), g_loss (with those in G's), g_loss_adv, d_acc_real and
d_acc_fake (fraction of images D gets right, threshold logit 0), d_prob_real and
d_prob_fake (mean D(x) and D(G(z)) as probabilities), loss = d_loss + g_loss (a progress
summary, not an objective); AC-GAN: aux_ce_real_nats, aux_ce_fake_nats, aux_acc_real,
aux_acc_fake; InfoGAN: info_ce_nats, info_acc, info_mi_bound_nats (H(c) - CE, a lower bound
on the mutual information), info_continuous_nll_nats.

Mixed precision: with `model.dtype='bfloat16'` G and D compute in bfloat16 (parameters,
optimizer states, BatchNorm statistics and the EMA stay float32); their outputs are cast
to float32, so every loss and metric is computed in float32.

BatchNorm: D sees real and fake batches in separate calls (as in DCGAN), each normalised
with its own batch statistics, in training and in eval (its running averages mix real
and fake batches, so they describe neither; eval masks padded examples out of the
statistics). Under jit with the batch sharded over devices these are statistics of the
global batch, so results do not depend on the device count. G's samples and figures use
its running averages.
"""

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import losses
from jaxgen import models
from jaxgen import registry
from jaxgen import value_range
from jaxgen.models import param_init
from jaxgen.objectives import base

LOSSES = losses.GAN_LOSSES
AUXILIARIES = ("none", "acgan", "infogan")


# ------------------------------------------------------------------ state
@flax.struct.dataclass
class GANState:
  """Everything a GAN run carries between steps (one pytree for checkpoints and sharding).

  Attributes:
    step: int32 number of completed training steps.
    g_params: {"generator": G's parameters} plus {"q_head": ...} for InfoGAN, whose
      recognition head is trained with the generator.
    d_params: the discriminator's parameters (trunk, real/fake head, AC-GAN class head).
    g_batch_stats: the generator's BatchNorm running statistics.
    d_batch_stats: the discriminator's BatchNorm running statistics.
    g_opt_state: optimizer state for `g_params`.
    d_opt_state: optimizer state for `d_params`.
    g_ema: {"params", "batch_stats"}: warmed-up exponential moving average of the
      generator (see `AdversarialObjective.ema_decay_at`) for samples and figures, or None
      when objective.ema_decay is 0.
  """
  step: jax.Array
  g_params: Any
  d_params: Any
  g_batch_stats: Any
  d_batch_stats: Any
  g_opt_state: Any
  d_opt_state: Any
  g_ema: Any = None


class AdversarialObjective(base.Objective):
  """GAN training with optional AC-GAN or InfoGAN auxiliary heads.

  Config fields (`config.objective`): loss ('nonsaturating' | 'hinge'), label_smoothing
  (one-sided, real targets 1 - s), auxiliary ('none' | 'acgan' | 'infogan'), aux_weight
  (AC-GAN class loss weight), info_weight and continuous_weight (InfoGAN categorical /
  continuous terms), info_in_d_step (InfoGAN terms in D's update too; default True),
  d_steps and g_steps (updates per training step), ema_decay (EMA of G for sampling;
  0 = off). The model (`config.model`, name 'dcgan') declares the noise
  size, classes and codes; `config.optimizer` is used for both networks (DCGAN: Adam
  2e-4, b1 = 0.5), with `optimizer.g_learning_rate` (if set) for G and Q.
  """

  guarded_metrics = ("d_loss", "g_loss")
  headline_metric = "g_loss"
  # Optional `objective.*` fields and their defaults.
  FIELD_DEFAULTS = {"loss": "nonsaturating", "auxiliary": "none", "label_smoothing": 0.0,
                    "aux_weight": 1.0, "info_weight": 1.0, "continuous_weight": 0.1,
                    "d_steps": 1, "g_steps": 1, "ema_decay": 0.0, "info_in_d_step": True}

  def __init__(self, config: ml_collections.ConfigDict):
    model_fields = models.module_fields(config.model)
    for field in ("image_shape", "g_features", "d_features"):
      if field in model_fields:
        model_fields[field] = tuple(model_fields[field])
    self.model = models.get_model(config.model.name, **model_fields)
    if not isinstance(self.model, models.DCGAN):
      raise errors.ConfigError(f"objective.name='adversarial' needs a GAN model (model.name="
                               f"'dcgan'), got model.name={config.model.name!r}.")
    param_init.only_flax(config.model, "DCGAN draws its weights from N(0, 0.02) on purpose "
                                       "(Radford et al., 2016)")
    obj = config_lib.with_defaults(config.objective, self.FIELD_DEFAULTS)
    self.loss = registry.lookup("GAN loss", obj.loss,
                                {k: k for k in LOSSES}, "objective.loss")
    self.auxiliary = registry.lookup("auxiliary head", obj.auxiliary,
                                     {k: k for k in AUXILIARIES}, "objective.auxiliary")
    self.label_smoothing = float(obj.label_smoothing)
    self.aux_weight = float(obj.aux_weight)
    self.info_weight = float(obj.info_weight)
    self.continuous_weight = float(obj.continuous_weight)
    self.d_steps = int(obj.d_steps)
    self.g_steps = int(obj.g_steps)
    self.ema_decay = float(obj.ema_decay)
    self.info_in_d_step = bool(obj.info_in_d_step)
    self.d_tx = base.make_optimizer(config.optimizer)
    g_optimizer = ml_collections.ConfigDict(config.optimizer.to_dict())
    if config_lib.with_defaults(config.optimizer, "optimizer").g_learning_rate:
      g_optimizer.learning_rate = config.optimizer.g_learning_rate
    self.g_tx = base.make_optimizer(g_optimizer)
    self.value_range = value_range.of_data(config.data)
    self.figure_fns: dict[str, Any] = {}  # Jitted figure methods, see `_jit_figure`.
    self.sample_description = "generator outputs G(z)" + (
        ", warmed-up EMA of G" if self.ema_decay else "")
    self._check_fields(config)

  def _check_fields(self, config: ml_collections.ConfigDict) -> None:
    model = self.model
    if self.value_range.interval != (-1.0, 1.0):
      raise errors.ConfigError(
          f"The generator ends in tanh, so GANs train on images in [-1, 1]: set "
          f"data.preprocessing='symmetric' (got {self.value_range.preprocessing!r}).")
    if not 0.0 <= self.label_smoothing < 1.0:
      raise errors.ConfigError(f"objective.label_smoothing must be in [0, 1), got "
                               f"{self.label_smoothing}.")
    if self.label_smoothing and self.loss == "hinge":
      raise errors.ConfigError("objective.label_smoothing applies to the BCE loss only; set it "
                               "to 0 with objective.loss='hinge'.")
    if self.d_steps < 1 or self.g_steps < 1:
      raise errors.ConfigError(f"objective.d_steps and objective.g_steps must be >= 1, got "
                               f"{self.d_steps} and {self.g_steps}.")
    if not 0.0 <= self.ema_decay < 1.0:
      raise errors.ConfigError(f"objective.ema_decay must be in [0, 1) (0 = no EMA), got "
                               f"{self.ema_decay}.")
    has_codes = model.has_q_head
    if self.auxiliary == "acgan" and (not model.num_classes or has_codes):
      raise errors.ConfigError(
          f"objective.auxiliary='acgan' needs a class-conditional model without codes: set "
          f"model.num_classes (2 for a binary attribute, 10 for digits; got "
          f"{model.num_classes}) and model.num_categorical_codes = "
          f"model.num_continuous_codes = 0.")
    if self.auxiliary == "infogan" and (not has_codes or model.num_classes):
      raise errors.ConfigError(
          f"objective.auxiliary='infogan' needs latent codes and no classes: set "
          f"model.num_categorical_codes and/or model.num_continuous_codes > 0 (got "
          f"{model.num_categorical_codes} and {model.num_continuous_codes}) and "
          f"model.num_classes = 0.")
    if self.auxiliary == "none" and (model.num_classes or has_codes):
      raise errors.ConfigError(
          "objective.auxiliary='none' trains an unconditional GAN, but the model has "
          "classes or codes: set objective.auxiliary to 'acgan' (model.num_classes) or "
          "'infogan' (model.num_*_codes), or set those model fields to 0.")

  # ---------------------------------------------------------------- conditioning
  def draw_conditioning(self, rng: jax.Array, num: int,
                        labels: jax.Array | None = None) -> dict[str, jax.Array | None]:
    """Random generator inputs for `num` images.

    Args:
      rng: PRNG key.
      num: number of images.
      labels: class labels to condition on (AC-GAN); None draws them uniformly.

    Returns:
      {"noise": (num, noise_dim) N(0, 1), "labels": (num,) ints or None, "codes":
      (num, n) uniform ints or None, "continuous": (num, m) U[-1, 1] or None}.
    """
    model = self.model
    noise_rng, label_rng, code_rng, cont_rng = jax.random.split(rng, 4)
    cond = {"noise": jax.random.normal(noise_rng, (num, model.noise_dim)),
            "labels": None, "codes": None, "continuous": None}
    if model.num_classes:
      cond["labels"] = (labels.astype(jnp.int32) if labels is not None else
                        jax.random.randint(label_rng, (num,), 0, model.num_classes))
    if model.num_categorical_codes:
      cond["codes"] = jax.random.randint(code_rng, (num, model.num_categorical_codes), 0,
                                         model.categorical_dim)
    if model.num_continuous_codes:
      cond["continuous"] = jax.random.uniform(cont_rng, (num, model.num_continuous_codes),
                                              minval=-1.0, maxval=1.0)
    return cond

  # ---------------------------------------------------------------- state
  def init_state(self, rng, example_batch):
    if self.auxiliary == "acgan" and "label" not in example_batch:
      raise errors.ConfigError(
          "objective.auxiliary='acgan' conditions on labels, but the dataset has none: use a "
          "labelled dataset, or for CelebA set data.label_attribute (e.g. 'Smiling').")
    images = example_batch["image"]
    init_rng, cond_rng = jax.random.split(rng)
    cond = self.draw_conditioning(cond_rng, images.shape[0])
    variables = self.model.init(init_rng, cond["noise"], images, cond["labels"],
                                cond["codes"], cond["continuous"], train=False)
    params, stats = variables["params"], variables["batch_stats"]
    d_params = dict(params["discriminator"])
    g_params = {"generator": params["generator"]}
    if "q_head" in d_params:
      g_params["q_head"] = d_params.pop("q_head")
    g_ema = None
    if self.ema_decay:
      g_ema = {"params": params["generator"], "batch_stats": stats["generator"]}
    return GANState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
        g_batch_stats=stats["generator"], d_batch_stats=stats["discriminator"],
        g_opt_state=self.g_tx.init(g_params), d_opt_state=self.d_tx.init(d_params),
        g_ema=g_ema)

  # ---------------------------------------------------------------- network calls
  def _d_params(self, g_params, d_params):
    """The discriminator's full parameters (Q's head is stored with the generator)."""
    return {**d_params, **({"q_head": g_params["q_head"]} if "q_head" in g_params else {})}

  def _generate(self, g_params, g_stats, cond, train: bool):
    """G's images in [-1, 1]; with train=True also returns its updated batch stats."""
    variables = {"params": {"generator": g_params["generator"]},
                 "batch_stats": {"generator": g_stats}}
    args = (cond["noise"], cond["labels"], cond["codes"], cond["continuous"])
    if not train:
      return base.to_float32(
          self.model.apply(variables, *args, train=False, method=self.model.generate))
    images, updates = self.model.apply(variables, *args, train=True,
                                       method=self.model.generate, mutable=["batch_stats"])
    return base.to_float32(images), updates["batch_stats"]["generator"]

  def _discriminate(self, g_params, d_params, d_stats, images, mask=None):
    """D's outputs with batch statistics, and its updated BatchNorm running averages.

    D always normalises with the statistics of the (real-only or fake-only) batch it
    sees, in training and in eval alike: its running averages mix real and fake
    batches and describe neither (they are kept only because BatchNorm carries them).
    `mask` keeps padded eval examples out of the statistics.
    """
    variables = {"params": {"discriminator": self._d_params(g_params, d_params)},
                 "batch_stats": {"discriminator": d_stats}}
    out, updates = self.model.apply(variables, images, train=True, mask=mask,
                                    method=self.model.discriminate, mutable=["batch_stats"])
    return base.to_float32(out), updates["batch_stats"]["discriminator"]

  # ---------------------------------------------------------------- per-example terms
  def _d_terms(self, out_real, out_fake, labels, cond):
    """Per-example D loss and metrics from D's outputs on real and fake images."""
    real_loss, fake_loss = losses.discriminator_losses(
        out_real["logit"], out_fake["logit"], self.loss, self.label_smoothing)
    terms = {
        "d_loss_real": real_loss,
        "d_loss_fake": fake_loss,
        "d_acc_real": (out_real["logit"] > 0).astype(jnp.float32),
        "d_acc_fake": (out_fake["logit"] < 0).astype(jnp.float32),
        "d_prob_real": jax.nn.sigmoid(out_real["logit"]),
        "d_prob_fake": jax.nn.sigmoid(out_fake["logit"]),
    }
    d_loss = real_loss + fake_loss
    if self.auxiliary == "acgan":
      ce_real = losses.categorical_cross_entropy(out_real["class_logits"], labels)
      ce_fake = losses.categorical_cross_entropy(out_fake["class_logits"], cond["labels"])
      terms["aux_ce_real_nats"] = ce_real
      terms["aux_ce_fake_nats"] = ce_fake
      terms["aux_acc_real"] = _accuracy(out_real["class_logits"], labels)
      d_loss = d_loss + self.aux_weight * (ce_real + ce_fake)
    if self.auxiliary == "infogan" and self.info_in_d_step:
      info_loss, _ = self._info_terms(out_fake, cond)
      d_loss = d_loss + info_loss
    terms["d_loss"] = d_loss
    return terms

  def _info_terms(self, out_fake, cond):
    """InfoGAN: (weighted per-example loss, metrics) of Q's predictions of the codes."""
    model = self.model
    loss, terms = 0.0, {}
    if model.num_categorical_codes:
      ce = losses.categorical_cross_entropy(out_fake["code_logits"], cond["codes"])
      terms["info_ce_nats"] = ce
      # I(c; G(z, c)) >= H(c) - CE: the InfoGAN variational lower bound.
      terms["info_mi_bound_nats"] = (
          model.num_categorical_codes * math.log(model.categorical_dim) - ce)
      terms["info_acc"] = jnp.mean(
          (jnp.argmax(out_fake["code_logits"], -1) == cond["codes"]).astype(jnp.float32),
          axis=-1)
      loss = loss + self.info_weight * ce
    if model.num_continuous_codes:
      nll = losses.gaussian_nll(out_fake["continuous_mean"], cond["continuous"],
                                out_fake["continuous_log_std"])
      terms["info_continuous_nll_nats"] = nll
      loss = loss + self.continuous_weight * nll
    return loss, terms

  def _g_terms(self, out_fake, cond):
    """Per-example G (and Q) loss and metrics from D's outputs on fakes."""
    adv = losses.generator_loss(out_fake["logit"], self.loss)
    terms = {"g_loss_adv": adv}
    g_loss = adv
    if self.auxiliary == "acgan":
      ce = losses.categorical_cross_entropy(out_fake["class_logits"], cond["labels"])
      terms["aux_acc_fake"] = _accuracy(out_fake["class_logits"], cond["labels"])
      g_loss = g_loss + self.aux_weight * ce
    if self.auxiliary == "infogan":
      info_loss, info_terms = self._info_terms(out_fake, cond)
      terms.update(info_terms)
      g_loss = g_loss + info_loss
    terms["g_loss"] = g_loss
    return terms

  # ---------------------------------------------------------------- steps
  def d_update(self, state: GANState, batch, rng) -> tuple[GANState, dict[str, jax.Array]]:
    """One discriminator update on `batch`'s real images and fresh fakes.

    Changes only D's parameters, optimizer state and BatchNorm statistics (not `step`).
    Returns the new state and D's per-example terms.
    """
    real = batch["image"]
    cond = self.draw_conditioning(rng, real.shape[0])
    # G's stats move in its own update only; here it just supplies fakes.
    fake, _ = self._generate(state.g_params, state.g_batch_stats, cond, train=True)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(d_params):
      out_real, stats = self._discriminate(state.g_params, d_params, state.d_batch_stats,
                                           real)
      out_fake, stats = self._discriminate(state.g_params, d_params, stats, fake)
      terms = self._d_terms(out_real, out_fake, batch.get("label"), cond)
      return jnp.mean(terms["d_loss"]), (stats, terms)

    (_, (stats, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    return state.replace(d_params=optax.apply_updates(state.d_params, updates),
                         d_opt_state=opt_state, d_batch_stats=stats), terms

  def ema_decay_at(self, num_updates: jax.Array) -> jax.Array:
    """The EMA decay of generator update number `num_updates` (0 = the first).

    min(objective.ema_decay, (1 + n) / (10 + n)), the warm-up of TensorFlow's
    ExponentialMovingAverage: the initial generator's weight in the EMA is the product of
    the decays so far (0.1 after one update, 2e-4 after ten), so samples come from
    trained generators at every step and the average widens to 1 / (1 - ema_decay)
    updates as training goes on.
    """
    n = jnp.asarray(num_updates, jnp.float32)
    return jnp.minimum(self.ema_decay, (1.0 + n) / (10.0 + n))

  def g_update(self, state: GANState, batch, rng, update_index: jax.Array | None = None
               ) -> tuple[GANState, dict[str, jax.Array]]:
    """One generator (and InfoGAN Q head) update against the current discriminator.

    Changes only G's (and Q's) parameters, optimizer state, BatchNorm statistics and EMA
    (not `step`). Returns the new state and G's per-example terms.
    """
    cond = self.draw_conditioning(rng, batch["image"].shape[0])

    def loss_fn(g_params):
      fake, stats = self._generate(g_params, state.g_batch_stats, cond, train=True)
      # D's statistics are left as they were: only D's own update moves them.
      out_fake, _ = self._discriminate(g_params, state.d_params, state.d_batch_stats, fake)
      terms = self._g_terms(out_fake, cond)
      return jnp.mean(terms["g_loss"]), (stats, terms)

    (_, (stats, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    g_ema = state.g_ema
    if g_ema is not None:
      if update_index is None:
        update_index = state.step * self.g_steps
      current = {"params": g_params["generator"], "batch_stats": stats}
      g_ema = optax.incremental_update(current, g_ema,
                                       step_size=1.0 - self.ema_decay_at(update_index))
    return state.replace(g_params=g_params, g_opt_state=opt_state, g_batch_stats=stats,
                         g_ema=g_ema), terms

  def metric_names(self):
    names = {"d_loss_real", "d_loss_fake", "d_acc_real", "d_acc_fake", "d_prob_real",
             "d_prob_fake", "d_loss", "g_loss_adv", "g_loss", "loss"}
    if self.auxiliary == "acgan":
      names |= {"aux_ce_real_nats", "aux_ce_fake_nats", "aux_acc_real", "aux_acc_fake"}
    if self.auxiliary == "infogan" and self.model.num_categorical_codes:
      names |= {"info_ce_nats", "info_mi_bound_nats", "info_acc"}
    if self.auxiliary == "infogan" and self.model.num_continuous_codes:
      names.add("info_continuous_nll_nats")
    return frozenset(names)

  def train_step(self, state, batch, rng):
    """`d_steps` D updates, then `g_steps` G updates; metrics of the last of each."""
    for i in range(self.d_steps):
      state, d_terms = self.d_update(state, batch, jax.random.fold_in(rng, i))
    for j in range(self.g_steps):
      state, g_terms = self.g_update(state, batch, jax.random.fold_in(rng, self.d_steps + j),
                                     update_index=state.step * self.g_steps + j)
    metrics = {k: jnp.mean(v) for k, v in {**d_terms, **g_terms}.items()}
    metrics["loss"] = metrics["d_loss"] + metrics["g_loss"]
    return state.replace(step=state.step + 1), metrics

  def eval_step(self, state, batch, rng):
    """Per-example D/G losses and accuracies on the split's real images and as many fakes.

    G uses its running averages; D the statistics of the real batch (padding masked out)
    and of the fake batch, as in training.
    """
    real = batch["image"]
    cond = self.draw_conditioning(rng, real.shape[0])
    fake = self._generate(state.g_params, state.g_batch_stats, cond, train=False)
    mask = batch.get("mask")
    if mask is not None:
      # A fully padded batch (extra batches on multi-host) has no statistics of its own.
      mask = jnp.where(jnp.sum(mask) > 0, mask, jnp.ones_like(mask))
    out_real, _ = self._discriminate(state.g_params, state.d_params, state.d_batch_stats,
                                     real, mask=mask)
    out_fake, _ = self._discriminate(state.g_params, state.d_params, state.d_batch_stats, fake)
    terms = {**self._d_terms(out_real, out_fake, batch.get("label"), cond),
             **self._g_terms(out_fake, cond)}
    terms["loss"] = terms["d_loss"] + terms["g_loss"]
    return terms

  # ---------------------------------------------------------------- images
  def generate(self, state: GANState, noise: jax.Array, labels: jax.Array | None = None,
               codes: jax.Array | None = None, continuous: jax.Array | None = None,
               use_ema: bool = True) -> jax.Array:
    """Generated images in [0, 1] (NHWC) for given generator inputs.

    Args:
      state: the GAN state.
      noise: (B, model.noise_dim) noise.
      labels: (B,) class labels (AC-GAN).
      codes: (B, model.num_categorical_codes) categorical codes (InfoGAN).
      continuous: (B, model.num_continuous_codes) continuous codes (InfoGAN).
      use_ema: use the EMA generator when the run keeps one.

    Raises:
      ValueError: inputs that do not match the generator (e.g. the number of codes).
    """
    cond = {"noise": noise, "labels": labels, "codes": codes, "continuous": continuous}
    g_params, g_stats = self.sampling_generator(state, use_ema)
    images = self._generate({"generator": g_params}, g_stats, cond, train=False)
    return jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)

  def sampling_generator(self, state: GANState, use_ema: bool = True) -> tuple[Any, Any]:
    """(generator params, generator BatchNorm statistics) that samples come from: the
    warmed-up EMA (`ema_decay_at`) when the run keeps one and `use_ema`, else G itself."""
    if not use_ema or state.g_ema is None:
      return state.g_params["generator"], state.g_batch_stats
    return state.g_ema["params"], state.g_ema["batch_stats"]

  def sample(self, state, rng, num):
    """`num` images from `rng`'s noise; AC-GAN labels cycle through the classes."""
    labels = None
    if self.model.num_classes:
      labels = jnp.arange(num) % self.model.num_classes
    cond = self.draw_conditioning(rng, num, labels)
    return self.generate(state, cond["noise"], cond["labels"], cond["codes"],
                         cond["continuous"])

  def extra_figures(self, state, rng, images):
    del images
    if self.auxiliary == "acgan":
      figure = _jit_figure(self, "class_grid")(state, rng)
      k = self.model.num_classes
      if k == 2:
        return {"attribute_pairs": (figure, 10, "same noise per column; top row without "
                                                 "the attribute, bottom row with it")}
      return {"class_grid": (figure, k, "one noise per row, classes across")}
    if self.auxiliary == "infogan":
      out = {}
      if self.model.num_categorical_codes:
        out["code_rows"] = (_jit_figure(self, "code_rows")(state, rng),
                            self.model.categorical_dim,
                            "fixed noise; each row varies one categorical code over its values")
      if self.model.num_continuous_codes:
        out["continuous_rows"] = (_jit_figure(self, "continuous_rows")(state, rng),
                                  _CONTINUOUS_STEPS,
                                  "fixed noise; each row sweeps one continuous code -2..2")
      return out
    return {}

  def class_grid(self, state: GANState, rng: jax.Array, num_noise: int = 10) -> jax.Array:
    """AC-GAN: for `num_noise` noise vectors, the image of every class.

    Returns (K * num_noise, H, W, C) in [0, 1]: for K = 2 (a binary attribute) two rows of
    `num_noise` pairs (row 1 without, row 2 with the attribute); otherwise one row per
    noise with the K classes across.
    """
    k = self.model.num_classes
    cond = self.draw_conditioning(rng, num_noise)
    if k == 2:
      noise = jnp.tile(cond["noise"], (2, 1))
      labels = jnp.repeat(jnp.arange(2), num_noise)
    else:
      noise = jnp.repeat(cond["noise"], k, axis=0)
      labels = jnp.tile(jnp.arange(k), num_noise)
    return self.generate(state, noise, labels)

  def code_rows(self, state: GANState, rng: jax.Array) -> jax.Array:
    """InfoGAN: rows of images that vary one categorical code over its values.

    For each code, max(1, 10 // num_codes) rows (fixed noise and other codes); across a
    row the code takes its `categorical_dim` values. Returns the images row by row.
    """
    model = self.model
    n, d = model.num_categorical_codes, model.categorical_dim
    per_code = max(1, 10 // n)
    cond = self.draw_conditioning(rng, per_code)
    noise, codes, cont = [], [], []
    for code in range(n):
      for r in range(per_code):
        noise.append(jnp.repeat(cond["noise"][r:r + 1], d, axis=0))
        row_codes = jnp.repeat(cond["codes"][r:r + 1], d, axis=0)
        codes.append(row_codes.at[:, code].set(jnp.arange(d)))
        if cond["continuous"] is not None:
          cont.append(jnp.repeat(cond["continuous"][r:r + 1], d, axis=0))
    return self.generate(state, jnp.concatenate(noise), None, jnp.concatenate(codes),
                         jnp.concatenate(cont) if cont else None)

  def continuous_rows(self, state: GANState, rng: jax.Array) -> jax.Array:
    """InfoGAN: per continuous code, rows sweeping it from -2 to 2 (others fixed)."""
    model = self.model
    m = model.num_continuous_codes
    per_code = max(1, 10 // m)
    cond = self.draw_conditioning(rng, per_code)
    values = jnp.linspace(-2.0, 2.0, _CONTINUOUS_STEPS)
    noise, codes, cont = [], [], []
    for code in range(m):
      for r in range(per_code):
        noise.append(jnp.repeat(cond["noise"][r:r + 1], _CONTINUOUS_STEPS, axis=0))
        if cond["codes"] is not None:
          codes.append(jnp.repeat(cond["codes"][r:r + 1], _CONTINUOUS_STEPS, axis=0))
        row = jnp.repeat(cond["continuous"][r:r + 1], _CONTINUOUS_STEPS, axis=0)
        cont.append(row.at[:, code].set(values))
    return self.generate(state, jnp.concatenate(noise), None,
                         jnp.concatenate(codes) if codes else None, jnp.concatenate(cont))

  def num_params(self, state):
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(
        (state.g_params, state.d_params))))


_CONTINUOUS_STEPS = 10


def _accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


def _jit_figure(objective: AdversarialObjective, method: str):
  """A jitted figure method, compiled once per objective."""
  if method not in objective.figure_fns:
    objective.figure_fns[method] = jax.jit(getattr(objective, method))
  return objective.figure_fns[method]
