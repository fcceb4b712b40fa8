"""The vmapped `sweep` objective: equals separate runs, compiles once, refuses bad fields."""

import chex
import jax
import numpy as np
import pytest

from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen import train
from jaxgen.objectives import sweep
from helpers import load_config

WEIGHTS = (1.0, 100.0, 0.0)


def _tiny(config, data_dir):
  config.data.data_dir = data_dir
  config.model.hidden_sizes = (32,)
  config.model.latent_dim = 4
  config.train.num_steps = 4
  config.train.eval_every = 4
  config.train.checkpoint_every = 4
  config.train.num_eval_batches = 1
  return config


def test_sweep_matches_separately_trained_runs_with_the_same_seed(data_dir, tmp_path):
  config = _tiny(load_config("kl_ablation", "smoke,model=mlp"), data_dir)
  assert tuple(config.objective.sweep_values) == WEIGHTS
  result = train.train_and_evaluate(config, str(tmp_path / "sweep"))
  swept = result.objective
  assert isinstance(swept, sweep.SweepObjective) and int(result.state.step) == 4
  assert {"elbo_nats/beta=1", "kl_nats/beta=100", "nll_nats/beta=0"} <= set(result.eval_metrics)
  # Two of the three copies (the ones whose weight is not mnist_vae's default), to keep
  # the test short; each is a full separate run through the loop.
  for i, weight in ((1, 100.0), (2, 0.0)):
    single = _tiny(load_config("mnist_vae", "smoke,model=mlp"), data_dir)
    single.objective.beta = weight
    single.optimizer.learning_rate = config.optimizer.learning_rate
    separate = train.train_and_evaluate(single, str(tmp_path / f"beta_{weight:g}"))
    member = swept.member_state(result.state, i)
    assert int(member.step) == 4
    chex.assert_trees_all_close(member.params, separate.state.params, rtol=1e-5, atol=1e-6)
    for name in ("elbo_nats", "kl_nats"):
      assert result.eval_metrics[f"{name}/beta={weight:g}"] == pytest.approx(
          separate.eval_metrics[name], rel=1e-5)
  # The KL weight acts: a heavy KL gives a small rate, none gives a large one.
  kl = {w: result.eval_metrics[f"kl_nats/beta={w:g}"] for w in WEIGHTS}
  assert kl[100.0] < kl[1.0] < kl[0.0]
  # `jaxgen.evaluate` takes a sweep apart and evaluates every copy.
  from jaxgen import evaluate
  evaluated = evaluate.evaluate_workdir(str(tmp_path / "sweep"), metrics=["likelihood"],
                                        iwae_k=(), max_examples=16)
  assert set(evaluated["members"]) == {"beta=1", "beta=100", "beta=0"}


def test_sweep_step_traces_once(data_dir):
  config = _tiny(load_config("kl_ablation", "smoke,model=mlp"), data_dir)
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  batches = data_lib.make_train_iterator(config.data, seed=0)
  state = train.init_state(objective, jax.random.PRNGKey(0), next(batches), mesh)
  chex.clear_trace_counter()
  step = train.jit_train_step(chex.assert_max_traces(objective.train_step, n=1), mesh)
  for _ in range(3):
    state, metrics = step(state, train.shard_batch(next(batches), mesh), jax.random.PRNGKey(1))
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))
  assert np.ndim(state.members.step) == 1 and list(state.members.step) == [3, 3, 3]


@pytest.mark.parametrize("field,values,message", [
    ("objective.nonexistent", (1.0, 2.0), r"cannot be swept.*`nonexistent`"),
    ("model.latent_dim", (2.0, 4.0), r"only top-level fields of config.objective"),
    ("objective.beta", (1.0, 1.0), r"repeated values"),
])
def test_unsweepable_fields_fail_clearly(field, values, message):
  config = load_config("kl_ablation", "smoke,model=mlp")
  config.objective.sweep_field = field
  config.objective.sweep_values = values
  if field == "objective.nonexistent":
    config.objective.nonexistent = 0.0
  with pytest.raises(ValueError, match=message):
    objectives.get_objective(config)
