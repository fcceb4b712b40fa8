"""The `sweep` wrapper: train one family at several values of one config field at once.

`config.objective.name = "sweep"` wraps the family named by `objective.inner` and
trains one copy per value in `objective.sweep_values` of the float field
`objective.sweep_field` (e.g. "objective.beta", the KL weight), with `jax.vmap` over the
copies: one program, one compilation and one pass over the data for all of them. The
loop sees an ordinary objective; checkpoints hold every copy.

Every copy starts from the same initialisation and sees the same batches and step
keys as a separate run with the same seed, so copy i matches
`train_and_evaluate` of the inner config with the field set to values[i] (up to
float rounding of the batched ops).

Metrics are named `<metric>/<field>=<value>` (e.g. `train/elbo_nats/beta=100`);
`loss` (and the inner family's other guarded metrics) are also reported as the mean
over copies, so a NaN in any copy stops the run.

A field is sweepable when the inner objective stores the config value in an
attribute of the same name (`objective.beta` -> `self.beta`) and uses it only in
traced arithmetic; the wrapper checks the first part when it is built.
"""

import copy
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections

import numpy as np

from jaxgen import errors
from jaxgen import registry
from jaxgen import value_range
from jaxgen.objectives import adversarial
from jaxgen.objectives import autoencoding
from jaxgen.objectives import base
from jaxgen.objectives import classification
from jaxgen.objectives import likelihood

# The families a sweep can wrap (every family but the sweep itself); `jaxgen.objectives`
# builds its registry from this table.
INNER_FAMILIES = {
    "adversarial": adversarial.AdversarialObjective,
    "autoencoding": autoencoding.build,
    "classification": classification.ClassificationObjective,
    "likelihood": likelihood.LikelihoodObjective,
}


@flax.struct.dataclass
class SweepState:
  """One shared step counter and the copies' states stacked on a leading axis."""
  step: jax.Array
  members: Any


def _format_value(value: float) -> str:
  return f"{value:g}"


class SweepObjective(base.Objective):
  """`objective.inner` trained at each of `objective.sweep_values` of `objective.sweep_field`.

  Config fields (`config.objective`): inner (the wrapped family's name), sweep_field
  (a float field of config.objective, e.g. "objective.beta"), sweep_values (e.g.
  (1.0, 100.0, 0.0)); the other fields configure the inner family as usual.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    obj = config.objective
    for name in ("inner", "sweep_field", "sweep_values"):
      if name not in obj:
        raise errors.ConfigError(
            f"objective.name='sweep' needs config.objective.{name} (inner: the family to "
            f"train, e.g. 'autoencoding'; sweep_field: e.g. 'objective.beta'; sweep_values: "
            f"e.g. (1.0, 100.0, 0.0)).")
    if obj.inner == "sweep":
      raise errors.ConfigError("objective.inner='sweep' would nest sweeps; name a model family.")
    build_inner = registry.lookup("objective", obj.inner, INNER_FAMILIES, "objective.inner")
    self.field = str(obj.sweep_field)
    section, _, self.attribute = self.field.partition(".")
    if section != "objective" or not self.attribute or "." in self.attribute:
      raise errors.ConfigError(f"objective.sweep_field={self.field!r}: only top-level fields of "
                               f"config.objective can be swept (e.g. 'objective.beta').")
    self.values = tuple(float(v) for v in obj.sweep_values)
    if len(self.values) < 1:
      raise errors.ConfigError("objective.sweep_values must hold at least one value.")
    self.tags = tuple(f"{self.attribute}={_format_value(v)}" for v in self.values)
    if len(set(self.tags)) != len(self.tags):
      raise errors.ConfigError(f"objective.sweep_values has repeated values: {self.values}.")
    self.config = config
    self._members = [build_inner(self._member_config(v)) for v in self.values]
    self.inner = self._members[0]
    for value, member in zip(self.values, self._members):
      held = getattr(member, self.attribute, None)
      if not isinstance(held, (int, float)) or not math.isclose(float(held), value):
        raise errors.ConfigError(
            f"objective.sweep_field={self.field!r} cannot be swept with vmap: "
            f"{type(member).__name__} does not keep its value in an attribute "
            f"`{self.attribute}` (got {held!r} for value {value}). Sweepable fields are "
            f"float fields of config.objective stored under the same name, e.g. "
            f"'objective.beta'.")
    if self.inner.needs_initial_fit:
      raise errors.ConfigError(f"objective.inner={obj.inner!r} needs a closed-form initial fit, "
                               f"which the vmapped sweep does not run; train separate runs.")
    self.guarded_metrics = tuple(self.inner.guarded_metrics)
    self.headline_metric = f"{self.inner.headline_metric}/{self.tags[0]}"
    self.value_range = value_range.of_data(config.data)

  def _member_config(self, value: float) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(self.config.to_dict())
    inner = config.objective
    inner.name = self.config.objective.inner
    for name in ("inner", "sweep_field", "sweep_values"):
      del inner[name]
    inner[self.attribute] = value
    return config

  # ---------------------------------------------------------------- members
  def members(self, state: SweepState) -> list[base.Member]:
    """Every copy as a `base.Member`: its tag, value, inner objective and state."""
    return [base.Member(tag, value, member, self.member_state(state, i))
            for i, (tag, value, member) in enumerate(zip(self.tags, self.values,
                                                          self._members))]

  def member_state(self, state: SweepState, index: int) -> Any:
    """The inner state of copy `index`."""
    return jax.tree_util.tree_map(lambda x: x[index], state.members)

  def _traced(self, value: jax.Array) -> base.Objective:
    """The inner objective with the swept attribute set to a traced value."""
    member = copy.copy(self.inner)
    setattr(member, self.attribute, value)
    return member

  def _values(self) -> jax.Array:
    return jnp.asarray(self.values, jnp.float32)

  def _per_member(self, metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {f"{name}/{tag}": value[i] for name, value in metrics.items()
            for i, tag in enumerate(self.tags)}

  # ---------------------------------------------------------------- Objective
  def init_state(self, rng, example_batch):
    # Same key for every copy: each starts where a separate run with this seed would.
    members = jax.vmap(lambda v: self._traced(v).init_state(rng, example_batch))(self._values())
    return SweepState(step=jnp.zeros((), jnp.int32), members=members)

  def metric_names(self):
    per_member = {f"{name}/{tag}" for name in self.inner.metric_names() for tag in self.tags}
    return frozenset(per_member | set(self.guarded_metrics))

  def train_step(self, state, batch, rng):
    def one(member_state, value):
      return self._traced(value).train_step(member_state, batch, rng)

    members, metrics = jax.vmap(one)(state.members, self._values())
    out = self._per_member(metrics)
    for name in self.guarded_metrics:
      out[name] = jnp.mean(metrics[name])  # NaN in any copy makes this NaN.
    return SweepState(step=state.step + 1, members=members), out

  def eval_step(self, state, batch, rng):
    def one(member_state, value):
      return self._traced(value).eval_step(member_state, batch, rng)

    metrics = jax.vmap(one)(state.members, self._values())
    return self._per_member(metrics)

  def sample(self, state, rng, num):
    """`num` images: copies in order, ceil(num / copies) each, from the same noise."""
    per = -(-num // len(self.values))
    images = jax.vmap(lambda s, v: self._traced(v).sample(s, rng, per))(
        state.members, self._values())
    return images.reshape((-1,) + images.shape[2:])[:num]

  def extra_figures(self, state, rng, images):
    """Per-copy samples (same noise) and reconstructions, one row per copy."""
    columns = min(8, len(images))
    samples = jax.jit(jax.vmap(lambda s, v: self._traced(v).sample(s, rng, columns)))(
        state.members, self._values())
    recons = None
    if isinstance(self.inner, base.Reconstructor):
      recons = jax.jit(jax.vmap(lambda s, v: self._traced(v).reconstruct(
          s, {"image": jnp.asarray(images[:columns])}, rng)))(state.members, self._values())
    rows = ", ".join(self.tags)
    figures = {"sweep_samples": (np.asarray(samples).reshape((-1,) + samples.shape[2:]),
                                 columns, f"prior samples, rows: {rows}")}
    if recons is not None:
      originals = self.value_range.to_unit(np.asarray(images[:columns], np.float32))
      figures["sweep_reconstructions"] = (
          np.concatenate([originals, np.asarray(recons).reshape((-1,) + recons.shape[2:])]),
          columns, f"reconstructions, rows: test images, {rows}")
    return figures

  def num_params(self, state):
    """Trained parameters of all copies together."""
    return sum(m.num_params(self.member_state(state, i)) for i, m in enumerate(self._members))
