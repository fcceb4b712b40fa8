"""Model families behind one interface (see `base.Objective`)."""

import ml_collections

from jaxgen import errors
from jaxgen import registry
from jaxgen.objectives.adversarial import AdversarialObjective
from jaxgen.objectives.autoencoding import AutoencodingObjective
from jaxgen.objectives.base import (Autoencoder, LatentVariableModel, ModelCollection,
                                     Objective, Reconstructor, Sampler, TrainState,
                                     make_optimizer)
from jaxgen.objectives.classification import ClassificationObjective
from jaxgen.objectives.likelihood import LikelihoodObjective
from jaxgen.objectives import sweep
from jaxgen.objectives.sweep import SweepObjective

# Name -> a callable building the family's objective from a config.
OBJECTIVES = {**sweep.INNER_FAMILIES, "sweep": SweepObjective}


def get_objective(config: ml_collections.ConfigDict) -> Objective:
  """Builds the objective named by `config.objective.name` (with its model).

  Raises:
    ValueError: an unknown name or inconsistent fields; ConfigError where
      `train.curve_metrics` names a metric the objective does not log.
  """
  build = registry.lookup("objective", config.objective.name, OBJECTIVES, "objective.name")
  objective = build(config)
  check_curve_metrics(config, objective)
  return objective


def check_curve_metrics(config: ml_collections.ConfigDict, objective: Objective) -> None:
  """Fails now, not after training, if `train.curve_metrics` names an unlogged metric.

  Raises:
    ConfigError: naming the unknown metrics and the ones the objective logs.
  """
  if "train" not in config or "curve_metrics" not in config.train:
    return  # The default, ("loss",), is drawn where the objective logs it.
  curves = config.train.curve_metrics
  known = objective.metric_names()
  unknown = [name for name in curves if name not in known]
  if unknown:
    raise errors.ConfigError(
        f"Config field train.curve_metrics names {', '.join(map(repr, unknown))}, which "
        f"objective.name={config.objective.name!r} does not log; it logs "
        f"{', '.join(sorted(known))}. Set e.g. "
        f"--config.train.curve_metrics=\"('loss',)\".")


__all__ = ["OBJECTIVES", "Autoencoder", "LatentVariableModel", "ModelCollection", "Objective",
           "Reconstructor", "Sampler", "TrainState", "check_curve_metrics", "get_objective",
           "make_optimizer"]
