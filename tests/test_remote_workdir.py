"""Workdirs on object stores (`gs://...`): every file the run writes goes through epath.

`tfds.testing.MockFs` routes `epath` and `tf.io.gfile` calls for `gs://` paths into a
local temporary folder; a write that bypassed them (plain `open`, `os.replace`) would
fail or land in a local `gs:` folder instead. Orbax's array writes (tensorstore) and
TensorBoard's C++ writer reach GCS without epath, so they are not covered here.
"""

import json
import os

import ml_collections
import numpy as np
import pytest
from tensorflow_datasets.testing import MockFs

from jaxgen import errors
from jaxgen import figures
from jaxgen import paths
from jaxgen import workdir as workdir_lib
from jaxgen import workdir_lock

WORKDIR = "gs://bucket/runs/vae"


@pytest.fixture
def mock_gcs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # A write that bypassed epath would create ./gs:/...
  with MockFs():
    yield
  assert not os.path.exists(tmp_path / "gs:")


def _config(learning_rate=1e-3):
  return ml_collections.ConfigDict({"seed": 0, "optimizer": {"learning_rate": learning_rate},
                                    "model": {"name": "vae"}})


def test_config_metrics_and_history_on_a_bucket(mock_gcs):
  assert workdir_lib.write_or_check_config(WORKDIR, _config()) == {}
  changes = workdir_lib.write_or_check_config(WORKDIR, _config(1e-4))
  assert changes == {"optimizer.learning_rate": (1e-3, 1e-4)}
  workdir_lib.record_config_changes(WORKDIR, 5, changes)
  metrics = paths.join(WORKDIR, workdir_lib.METRICS_FILE)
  for step in range(1, 5):
    paths.append_line(metrics, json.dumps({"step": step, "train/loss": float(step)}))
  workdir_lib.truncate_history(WORKDIR, 2)
  assert [r["step"] for r in workdir_lib.read_metrics(WORKDIR)] == [1, 2]
  assert json.loads(paths.read_text(paths.join(WORKDIR, workdir_lib.CONFIG_FILE))) == (
      workdir_lib.config_to_dict(_config(1e-4)))
  assert "config_changes.jsonl" in paths.list_names(WORKDIR)


def test_figures_on_a_bucket(mock_gcs):
  path = figures.save_image_grid(paths.join(WORKDIR, "figures", "samples.png"),
                                 np.zeros((4, 8, 8, 1)), 2)
  assert paths.list_names(paths.parent(path)) == ["samples.png"]
  assert paths.read_bytes(path).startswith(b"\x89PNG")


def test_lock_on_a_bucket_refuses_a_second_holder(mock_gcs, monkeypatch):
  monkeypatch.setattr(workdir_lock, "REMOTE_SETTLE_SECONDS", 0.01)
  with workdir_lock.WorkdirLock(WORKDIR):
    with pytest.raises(errors.WorkdirBusyError, match="in use by PID"):
      workdir_lock.WorkdirLock(WORKDIR).acquire()
  assert workdir_lock.LOCK_FILE not in paths.list_names(WORKDIR)


def test_silent_remote_lock_is_taken_over(mock_gcs, monkeypatch):
  monkeypatch.setattr(workdir_lock, "REMOTE_SETTLE_SECONDS", 0.01)
  # A holder that stopped refreshing its heartbeat long ago (e.g. a recycled VM).
  stale = {"host": "elsewhere", "pid": 1, "token": "old",
           "heartbeat": 0.0, "since": "long ago"}
  paths.write_atomically(paths.join(WORKDIR, workdir_lock.LOCK_FILE), json.dumps(stale))
  with workdir_lock.WorkdirLock(WORKDIR) as lock:
    holder = json.loads(paths.read_text(lock.path))
    assert holder["pid"] == os.getpid()


def test_bucket_workdir_without_the_storage_client_is_one_clear_error():
  try:
    from google.cloud import storage  # noqa: F401
  except ImportError:
    pass
  else:
    pytest.skip("google-cloud-storage is installed here")
  with pytest.raises(errors.ConfigError, match=r'pip install -e "\.\[gcs\]"'):
    paths.check_supported(WORKDIR)
  paths.check_supported("/local/run")  # Local workdirs need nothing more.
