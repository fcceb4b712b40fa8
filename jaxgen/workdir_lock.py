"""One writer per workdir: a lock file naming its holder's host and PID.

Two runs on one workdir would overwrite each other's checkpoints and interleave their
metrics, so `train_and_evaluate` holds `workdir/lock.json` while it runs. The file is
created atomically (O_EXCL); a lock whose holder is gone is taken over with a warning:

* same host: the PID no longer runs (or now belongs to a process started later, as
  after a container restart);
* another host: the holder stopped refreshing the file (a thread touches it every
  `HEARTBEAT_SECONDS`) for `STALE_AFTER_SECONDS`, e.g. a Colab VM that was recycled.

On an object store (`gs://` workdirs) there is no create-if-absent: the lock is written,
then read back after `REMOTE_SETTLE_SECONDS`, and held only if it still names this
process (of two starters racing, the later writer holds it and the other is refused);
the heartbeat rewrites a timestamp inside the file.

Only this module's light imports are needed, so the CLI can check the lock before it
imports TensorFlow.
"""

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from absl import logging

from jaxgen import errors
from jaxgen import paths

LOCK_FILE = "lock.json"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 300.0
REMOTE_SETTLE_SECONDS = 2.0


def _process_start_ticks(pid: int) -> int | None:
  """When `pid` started (clock ticks since boot, Linux), or None where unknown."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      # Field 22 counts from 1; the command name (field 2) may hold spaces, so split
      # after its closing parenthesis.
      return int(f.read().rsplit(")", 1)[1].split()[19])
  except (OSError, IndexError, ValueError):
    return None


def _this_process() -> dict[str, Any]:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "pid_start": _process_start_ticks(os.getpid()),
          "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "token": uuid.uuid4().hex,
          "heartbeat": time.time()}


def _read_holder(path: str) -> dict[str, Any] | None:
  """The lock's contents; None when it vanished or is still being written."""
  try:
    return json.loads(paths.read_text(path))
  except (OSError, ValueError):
    return None


def _seconds_silent(path: str, holder: dict[str, Any]) -> float:
  """Seconds since the holder last refreshed the lock."""
  if paths.is_remote(path):
    return time.time() - float(holder.get("heartbeat", 0.0))
  return time.time() - os.path.getmtime(path)


def _staleness(path: str, holder: dict[str, Any]) -> str | None:
  """Why the holder is gone ("PID 12 is not running"), or None if it may be alive."""
  if holder.get("host") == socket.gethostname() and not paths.is_remote(path):
    pid = int(holder.get("pid", -1))
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return f"PID {pid} is not running"
    except PermissionError:
      pass  # Alive, owned by another user.
    started = _process_start_ticks(pid)
    if None not in (started, holder.get("pid_start")) and started != holder["pid_start"]:
      return f"PID {pid} now belongs to another process"
    return None
  try:
    silent = _seconds_silent(path, holder)
  except OSError:
    return "the lock vanished"
  if silent > STALE_AFTER_SECONDS:
    return f"its holder has not refreshed it for {silent / 60:.0f} min"
  return None


class WorkdirLock:
  """Holds `workdir/lock.json` from `acquire()` to `release()` (or a `with` block)."""

  def __init__(self, workdir: str):
    self.path = paths.join(workdir, LOCK_FILE)
    self._me = _this_process()
    self._stop = threading.Event()
    self._heartbeat: threading.Thread | None = None

  def acquire(self) -> "WorkdirLock":
    """Takes the lock, or raises `errors.WorkdirBusyError` naming the live holder."""
    paths.makedirs(paths.parent(self.path))
    if paths.is_remote(self.path):
      return self._acquire_remote()
    for _ in range(20):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = _read_holder(self.path)
        if holder is None:
          time.sleep(0.05)  # Being written by another starter, or just removed.
          continue
        reason = _staleness(self.path, holder)
        if reason is None:
          raise errors.WorkdirBusyError(_busy_message(self.path, holder))
        self._take_over(holder, reason)
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(self._me, f)
      self._start_heartbeat()
      return self
    raise errors.WorkdirBusyError(
        f"Could not take the lock {self.path}: other processes keep creating and "
        f"removing it. Make sure only one run uses this workdir.")

  def _acquire_remote(self) -> "WorkdirLock":
    for _ in range(5):
      holder = _read_holder(self.path)
      if holder is not None:
        reason = _staleness(self.path, holder)
        if reason is None:
          raise errors.WorkdirBusyError(_busy_message(self.path, holder))
        _log_take_over(self.path, holder, reason)
      paths.write_atomically(self.path, json.dumps(self._me))
      time.sleep(REMOTE_SETTLE_SECONDS)  # A racing starter's write lands meanwhile.
      if (_read_holder(self.path) or {}).get("token") == self._me["token"]:
        self._start_heartbeat()
        return self
    raise errors.WorkdirBusyError(
        f"Could not take the lock {self.path}: other processes keep writing it. Make "
        f"sure only one run uses this workdir.")

  def _take_over(self, holder: dict[str, Any], reason: str) -> None:
    # Renaming is atomic: of several processes finding the same stale lock, one moves
    # it and the others see it gone (or see the winner's new lock) and retry.
    aside = f"{self.path}.stale-{self._me['token']}"
    try:
      os.rename(self.path, aside)
    except OSError:
      return
    if _read_holder(aside) != holder:
      # Between reading and renaming, a live process replaced the stale lock: put its
      # lock back (link, unlike rename, never overwrites a lock made meanwhile).
      try:
        os.link(aside, self.path)
      except OSError:
        pass
      os.remove(aside)
      return
    os.remove(aside)
    _log_take_over(self.path, holder, reason)

  def _refresh(self) -> None:
    if paths.is_remote(self.path):
      self._me["heartbeat"] = time.time()
      paths.write_atomically(self.path, json.dumps(self._me))
    else:
      os.utime(self.path)

  def _start_heartbeat(self) -> None:
    def beat():
      while not self._stop.wait(HEARTBEAT_SECONDS):
        try:
          self._refresh()
        except OSError:
          return
    self._heartbeat = threading.Thread(target=beat, name="workdir-lock", daemon=True)
    self._heartbeat.start()

  def release(self) -> None:
    """Removes the lock if it is still this process's."""
    self._stop.set()
    holder = _read_holder(self.path)
    if holder is not None and holder.get("token") == self._me["token"]:
      paths.remove(self.path)

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _log_take_over(path: str, holder: dict[str, Any], reason: str) -> None:
  logging.warning("Took over the workdir lock %s from PID %s on %s (since %s): %s.",
                  path, holder.get("pid"), holder.get("host"), holder.get("since"), reason)


def _busy_message(path: str, holder: dict[str, Any]) -> str:
  return (f"The workdir {paths.parent(path)} is in use by PID {holder.get('pid')} on "
          f"host {holder.get('host')} (since {holder.get('since')}). Two runs on one "
          f"workdir would overwrite each other's checkpoints: wait for that run to end, "
          f"stop it, or use another --workdir. If that process no longer exists, delete "
          f"{path} and rerun.")


def check_free(workdir: str) -> None:
  """Raises `errors.WorkdirBusyError` if a live process holds `workdir`'s lock.

  A cheap early check for the command line, before heavy imports; the lock itself is
  taken by `train_and_evaluate`.
  """
  path = paths.join(workdir, LOCK_FILE)
  holder = _read_holder(path)
  if holder is not None and _staleness(path, holder) is None:
    raise errors.WorkdirBusyError(_busy_message(path, holder))
