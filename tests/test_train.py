"""The generic loop end to end: runs, resumes, refuses bad input, stops on NaN."""

import json
import os

import chex
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen import checkpoints
from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen import train
from jaxgen import workdir as workdir_lib
from helpers import load_config


def smoke_config(data_dir, arg="smoke", **overrides):
  config = load_config("mnist_vae", arg, **overrides)
  config.data.data_dir = data_dir
  return config


def test_full_run_on_mnist_5k_then_resume(data_dir, tmp_path, figure_check):
  workdir = str(tmp_path / "run")
  config = smoke_config(data_dir)
  result = train.train_and_evaluate(config, workdir)
  assert int(result.state.step) == 6
  assert np.isfinite(result.eval_metrics["elbo_nats"]) and result.eval_metrics["elbo_nats"] < 0
  for name in ("config.json", "metrics.jsonl", "report.md"):
    assert os.path.exists(os.path.join(workdir, name)), name
  for name in ("reconstructions.png", "samples.png", "learning_curves.png"):
    assert os.path.getsize(os.path.join(workdir, "figures", name)) > 1000, name
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
  records = workdir_lib.read_metrics(workdir)
  assert [r["step"] for r in records if "train/loss" in r] == [2, 3, 4, 6]  # log_every=2; eval/checkpoint steps log too
  assert {"eval/elbo_nats", "eval/kl_nats", "eval/nll_nats"} <= set(records[-1])
  # A Bernoulli decoder of grey levels is a cross-entropy, not a likelihood: no bits/dim.
  assert "eval/bits_per_dim" not in records[-1]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    first = json.loads(f.readline())
  assert isinstance(first["step"], int)
  report = open(os.path.join(workdir, "report.md")).read()
  assert "negative ELBO" in report and "figures/samples.png" in report
  assert checkpoints.Checkpointer(os.path.join(workdir, "checkpoints")).latest_step() == 6
  figure_check.assert_readable_under(workdir)

  # Same command, more steps: continues from step 6 with the saved RNG.
  config.train.num_steps = 9
  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.state.step) == 9
  train_steps = [r["step"] for r in workdir_lib.read_metrics(workdir) if "train/loss" in r]
  assert train_steps == [2, 3, 4, 6, 8, 9]
  # A finished run rerun unchanged trains nothing and keeps its step.
  again = train.train_and_evaluate(config, workdir)
  assert int(again.state.step) == 9


def _final_state(workdir, config):
  """(state, rng) of a workdir's newest checkpoint, restored without touching it."""
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  objective = objectives.get_objective(config)
  example = {"image": np.zeros((16, 28, 28, 1), np.float32), "label": np.zeros(16, np.int32)}
  template = objective.init_state(jax.random.PRNGKey(0), example)
  try:
    return ckpt.restore_latest(template, jax.random.PRNGKey(123))
  finally:
    ckpt.close()


def assert_same_bits(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  differing = [i for i, (x, y) in enumerate(zip(leaves_a, leaves_b))
               if not np.array_equal(np.asarray(x), np.asarray(y))]
  assert not differing, f"{len(differing)} of {len(leaves_a)} leaves differ"


def _history(workdir):
  """metrics.jsonl without the timing column, which is the one thing allowed to differ."""
  return [{k: v for k, v in r.items() if k != "train/steps_per_sec"}
          for r in workdir_lib.read_metrics(workdir)]


def test_resume_continues_exactly_like_an_uninterrupted_run(data_dir, tmp_path):
  """3 steps, stop, 3 more == 6 in one go: parameters, optimizer state, RNG, metrics."""
  config = smoke_config(data_dir, train__eval_every=3, train__checkpoint_every=3)
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  config.train.num_steps = 3
  train.train_and_evaluate(config, str(tmp_path / "split"))
  config.train.num_steps = 6
  split = train.train_and_evaluate(config, str(tmp_path / "split"))
  assert_same_bits(whole.state, split.state)  # params, opt_state (Adam moments), step
  assert split.eval_metrics == whole.eval_metrics
  assert_same_bits(_final_state(str(tmp_path / "whole"), config),
                   _final_state(str(tmp_path / "split"), config))
  assert _history(str(tmp_path / "split")) == _history(str(tmp_path / "whole"))
  # The run's RNG comes back from the checkpoint, not from the template.
  _, rng = _final_state(str(tmp_path / "split"), config)
  np.testing.assert_array_equal(rng, jax.random.split(jax.random.PRNGKey(config.seed), 4)[1])


def _tensorboard_points(workdir):
  """Every (tag, step) logged to the workdir's TensorBoard event files."""
  import tensorflow as tf
  points = []
  for name in os.listdir(workdir):
    if name.startswith("events.out.tfevents"):
      for record in tf.data.TFRecordDataset(os.path.join(workdir, name)).as_numpy_iterator():
        event = tf.compat.v1.Event.FromString(record)
        points += [(value.tag, event.step) for value in event.summary.value]
  return sorted(points)


def test_resume_step_backs_up_and_sets_newer_checkpoints_aside(data_dir, tmp_path):
  config = smoke_config(data_dir, train__eval_every=2, train__checkpoint_every=2)
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  again = train.train_and_evaluate(config, workdir, resume_step=2)
  assert_same_bits(whole.state, again.state)
  assert _history(workdir) == _history(str(tmp_path / "whole"))
  # TensorBoard too: steps 3-6 were logged twice and kept once.
  points = _tensorboard_points(workdir)
  assert len(points) == len(set(points)) and ("train/loss", 6) in points
  assert {p for p in points if "steps_per_sec" not in p[0]} == {
      p for p in _tensorboard_points(str(tmp_path / "whole")) if "steps_per_sec" not in p[0]}
  aside = sorted(os.listdir(tmp_path / "run" / checkpoints.SET_ASIDE_DIR))
  assert [name.split("-")[0] for name in aside] == ["4", "6"]
  with pytest.raises(checkpoints.CheckpointError, match=r"no checkpoint at step 5.*\[2, 4, 6\]"):
    train.train_and_evaluate(config, workdir, resume_step=5)


def test_finished_run_rerun_changes_nothing(data_dir, tmp_path):
  workdir = tmp_path / "run"
  config = smoke_config(data_dir)
  train.train_and_evaluate(config, str(workdir))

  def snapshot():
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and "checkpoints" not in p.parts}

  before = snapshot()
  assert "## Timing" in before["report.md"].decode()
  result = train.train_and_evaluate(config, str(workdir))
  assert snapshot() == before
  assert result.eval_metrics["elbo_nats"] == pytest.approx(
      workdir_lib.read_metrics(str(workdir))[-1]["eval/elbo_nats"])


def test_torn_metrics_line_is_skipped_and_dropped_on_resume(data_dir, tmp_path, caplog):
  workdir = tmp_path / "run"
  config = smoke_config(data_dir, train__num_steps=3, train__checkpoint_every=3)
  train.train_and_evaluate(config, str(workdir))
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 4, "train/lo')  # Power lost mid-write.
  records = workdir_lib.read_metrics(str(workdir))
  assert records[-1]["step"] == 3
  assert "not a whole record" in caplog.text
  config.train.num_steps = 6
  train.train_and_evaluate(config, str(workdir))
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  steps = [json.loads(line)["step"] for line in lines]  # Every line parses again.
  assert steps == sorted(steps) and steps[-1] == 6


def test_train_step_traces_once(data_dir):
  config = smoke_config(data_dir)
  objective = objectives.get_objective(config)
  mesh = train.make_mesh()
  batch_iter = data_lib.make_train_iterator(config.data, seed=0)
  state = train.init_state(objective, jax.random.PRNGKey(0), next(batch_iter), mesh)
  chex.clear_trace_counter()
  step = train.jit_train_step(chex.assert_max_traces(objective.train_step, n=1), mesh)
  for _ in range(3):
    state, metrics = step(state, train.shard_batch(next(batch_iter), mesh), jax.random.PRNGKey(1))
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))


def test_full_run_under_mock_data(tmp_path, monkeypatch):
  # mock_data patches epath for the whole process while a pipeline is built; a checkpoint
  # written in the background meanwhile would be redirected into its fake file system.
  monkeypatch.setattr(checkpoints, "ASYNC_SAVES", False)
  config = load_config("mnist_vae", "smoke")
  config.data.name = "mnist"
  config.data.data_dir = str(tmp_path / "no_data_here")
  config.data.download = True  # Under mock_data, "downloading" is a no-op.
  with tfds.testing.mock_data(num_examples=64):
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert int(result.state.step) == 6
  assert np.isfinite(result.eval_metrics["elbo_nats"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  config = smoke_config(data_dir)
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  train.train_and_evaluate(config, workdir)
  real = data_lib.make_train_iterator

  def poisoned(*args, **kwargs):
    for batch in real(*args, **kwargs):
      batch = dict(batch)
      batch["image"] = np.full_like(batch["image"], np.nan)
      yield batch

  monkeypatch.setattr(data_lib, "make_train_iterator", poisoned)
  config.train.num_steps = 8
  with pytest.raises(train.NonFiniteLossError, match=r"Step 5: train/loss is nan.*step 4"):
    train.train_and_evaluate(config, workdir)
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  assert ckpt.latest_step() == 4
  monkeypatch.setattr(data_lib, "make_train_iterator", real)
  # The advice as printed: a lower learning rate and clipping are accepted on resume.
  config.optimizer.learning_rate = 1e-4
  config.optimizer.grad_clip_norm = 1.0
  result = train.train_and_evaluate(config, workdir)  # Resumes from the good step 4.
  assert int(result.state.step) == 8 and np.isfinite(result.eval_metrics["elbo_nats"])
  changes = [json.loads(line) for line in open(os.path.join(workdir, "config_changes.jsonl"))]
  assert [(c["step"], c["changes"]) for c in changes] == [
      (4, {"train.num_steps": {"from": 4, "to": 8}}),  # The attempt that diverged.
      (4, {"optimizer.grad_clip_norm": {"from": None, "to": 1.0},
           "optimizer.learning_rate": {"from": 1e-3, "to": 1e-4}})]
  assert json.load(open(os.path.join(workdir, "config.json")))["optimizer"]["learning_rate"] == 1e-4


def test_conflicting_workdir_config_names_the_fields(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = smoke_config(data_dir)
  config.train.num_steps = 2
  train.train_and_evaluate(config, workdir)
  other = smoke_config(data_dir, "smoke,latent=5")
  with pytest.raises(ValueError, match=r"model\.latent_dim: workdir has 2, command has 5"):
    train.train_and_evaluate(other, workdir)


def test_workdir_written_before_model_dtype_existed_resumes_as_float32(data_dir, tmp_path):
  config = smoke_config(data_dir)
  old = workdir_lib.config_to_dict(config)
  del old["model"]["dtype"]  # As stored by runs made before the field was added.
  (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(old))
  workdir_lib.write_or_check_config(str(tmp_path), config)  # float32: the same run.
  config.model.dtype = "bfloat16"
  with pytest.raises(ValueError, match=r"model\.dtype: workdir has 'float32', command has "
                     r"'bfloat16'"):
    workdir_lib.write_or_check_config(str(tmp_path), config)


@pytest.mark.parametrize("field,value,message", [
    ("model__name", "resnet_gan", r"Unknown model 'resnet_gan'.*Known models: .*conv_vae"),
    ("objective__name", "diffusion", r"Unknown objective 'diffusion'.*autoencoding"),
    ("objective__likelihood", "poisson", r"Unknown likelihood 'poisson'.*bernoulli"),
    ("data__name", "not_a_dataset", r"not_a_dataset"),
    ("data__preprocessing", "sharpen", r"sharpen"),
    ("model__image_shape", (32, 32, 3), r"model\.image_shape"),
])
def test_bad_names_and_shapes_fail_clearly_before_writing(data_dir, tmp_path, field, value, message):
  config = smoke_config(data_dir, **{field: value})
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(workdir))
  assert not (workdir / "checkpoints").exists()


def test_unprepared_dataset_fails_fast_without_writing(tmp_path, monkeypatch):
  config = load_config("mnist_vae", "smoke")
  config.data.name = "mnist"
  config.data.data_dir = str(tmp_path / "empty")
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      lambda *a, **k: pytest.fail("a build or download was attempted"))
  with pytest.raises(data_lib.DatasetNotPreparedError, match="mnist"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir):
    for name in files:
      if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")


def test_corrupt_latest_checkpoint_is_set_aside_and_the_run_resumes(data_dir, tmp_path, caplog):
  workdir = tmp_path / "run"
  config = smoke_config(data_dir, train__eval_every=2, train__checkpoint_every=2)
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  config.train.num_steps = 4
  train.train_and_evaluate(config, str(workdir))
  _corrupt(workdir / "checkpoints" / "4")
  config.train.num_steps = 6
  result = train.train_and_evaluate(config, str(workdir))  # From step 2, by itself.
  assert_same_bits(whole.state, result.state)
  assert "Checkpoint step 4 (unreadable) moved to" in caplog.text
  assert [n.split("-")[:2] for n in os.listdir(workdir / checkpoints.SET_ASIDE_DIR)] == [
      ["4", "unreadable"]]


def test_no_readable_checkpoint_gives_clear_error_and_moves_nothing(data_dir, tmp_path):
  workdir = tmp_path / "run"
  config = smoke_config(data_dir)
  config.train.num_steps = 3
  train.train_and_evaluate(config, str(workdir))
  _corrupt(workdir / "checkpoints" / "3")
  with pytest.raises(checkpoints.CheckpointError, match=r"No checkpoint in .* can be restored"):
    train.train_and_evaluate(config, str(workdir))
  assert os.listdir(workdir / "checkpoints") == ["3"]


def test_compilation_cache_none_leaves_it_off(monkeypatch, tmp_path):
  from jaxgen import runtime
  before = jax.config.jax_compilation_cache_dir
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("JAXGEN_COMPILATION_CACHE_DIR", "none")
  assert runtime.enable_compilation_cache() is None
  assert runtime.enable_compilation_cache("None") is None
  assert jax.config.jax_compilation_cache_dir == before
  assert not os.listdir(tmp_path)  # No directory called "none" was made.
