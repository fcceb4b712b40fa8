"""One writer per workdir: the lock refuses a live holder and takes over a dead one."""

import json
import os
import subprocess
import sys
import time

import pytest

from jaxgen import errors
from jaxgen import workdir_lock


def test_second_holder_is_refused_naming_the_first(tmp_path):
  with workdir_lock.WorkdirLock(str(tmp_path)):
    holder = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid()
    with pytest.raises(errors.WorkdirBusyError, match=rf"in use by PID {os.getpid()} on host"):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    with pytest.raises(errors.WorkdirBusyError):
      workdir_lock.check_free(str(tmp_path))
  assert not (tmp_path / workdir_lock.LOCK_FILE).exists()  # Released on exit.
  workdir_lock.check_free(str(tmp_path))


def _dead_pid():
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
  stale = {"host": os.uname().nodename, "pid": _dead_pid(), "since": "earlier"}
  (tmp_path / workdir_lock.LOCK_FILE).write_text(json.dumps(stale))
  workdir_lock.check_free(str(tmp_path))
  with workdir_lock.WorkdirLock(str(tmp_path)):
    assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["pid"] == os.getpid()
  assert f"from PID {stale['pid']}" in caplog.text and "is not running" in caplog.text


def test_reused_pid_counts_as_dead(tmp_path):
  # Same PID (ours) but another start time: a process that died before a restart.
  me = workdir_lock._this_process()
  (tmp_path / workdir_lock.LOCK_FILE).write_text(json.dumps({**me, "pid_start": -1}))
  with workdir_lock.WorkdirLock(str(tmp_path)):
    pass


def test_other_host_is_trusted_until_its_heartbeat_stops(tmp_path, monkeypatch):
  path = tmp_path / workdir_lock.LOCK_FILE
  path.write_text(json.dumps({"host": "another-vm", "pid": 1, "since": "earlier"}))
  with pytest.raises(errors.WorkdirBusyError, match="PID 1 on host another-vm"):
    workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  old = time.time() - workdir_lock.STALE_AFTER_SECONDS - 60
  os.utime(path, (old, old))
  with workdir_lock.WorkdirLock(str(tmp_path)):
    pass


def test_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lock, "HEARTBEAT_SECONDS", 0.05)
  with workdir_lock.WorkdirLock(str(tmp_path)):
    path = tmp_path / workdir_lock.LOCK_FILE
    os.utime(path, (0, 0))
    time.sleep(0.5)
    assert time.time() - os.path.getmtime(path) < 5
