"""Model families behind one interface (see `base.Objective`)."""

import ml_collections

from jaxgen import registry
from jaxgen.objectives.adversarial import AdversarialObjective
from jaxgen.objectives.autoencoding import AutoencodingObjective
from jaxgen.objectives.base import Objective, TrainState, make_optimizer
from jaxgen.objectives.classification import ClassificationObjective
from jaxgen.objectives.likelihood import LikelihoodObjective
from jaxgen.objectives.sweep import SweepObjective

OBJECTIVES = {
    "autoencoding": AutoencodingObjective,
    "adversarial": AdversarialObjective,
    "classification": ClassificationObjective,
    "likelihood": LikelihoodObjective,
    "sweep": SweepObjective,
}


def get_objective(config: ml_collections.ConfigDict) -> Objective:
  """Builds the objective named by `config.objective.name` (with its model)."""
  cls = registry.lookup("objective", config.objective.name, OBJECTIVES, "objective.name")
  return cls(config)


__all__ = ["OBJECTIVES", "Objective", "TrainState", "get_objective", "make_optimizer"]
