"""The command line with a fault injected: `python fault_driver.py [OPTION] <jaxgen.main flags>`.

--kill_after_save_starts=N: the process sends itself SIGKILL right after the checkpoint
  save of step N has started (in the background, so the checkpoint is still being
  written): a power cut in the middle of a save.
--sleep_per_batch=S: each training batch arrives S seconds late (the values are
  unchanged), to hold a run open while a test does something beside it.
--record_writes=FILE: appends to FILE, one a line, every path the process opens for
  writing or renames into (Python-level writes: metrics, figures, reports, configs).
"""

import os
import signal
import sys
import time


def _record_writes(record_to: str) -> None:
  import builtins
  log = open(record_to, "a", buffering=1)
  original_open, original_replace, original_rename = builtins.open, os.replace, os.rename

  def recording_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
      log.write(os.path.abspath(os.fspath(file)) + "\n")
    return original_open(file, mode, *args, **kwargs)

  def recording(original):
    def move(src, dst, *args, **kwargs):
      log.write(os.path.abspath(os.fspath(dst)) + "\n")
      return original(src, dst, *args, **kwargs)
    return move

  builtins.open = recording_open
  os.replace, os.rename = recording(original_replace), recording(original_rename)


def main():
  kill_step, delay, record_to = None, 0.0, None
  argv = [sys.argv[0]]
  for arg in sys.argv[1:]:
    if arg.startswith("--kill_after_save_starts="):
      kill_step = int(arg.split("=", 1)[1])
    elif arg.startswith("--sleep_per_batch="):
      delay = float(arg.split("=", 1)[1])
    elif arg.startswith("--record_writes="):
      record_to = arg.split("=", 1)[1]
    else:
      argv.append(arg)
  sys.argv = argv
  if record_to:
    _record_writes(record_to)

  from jaxgen import checkpoints
  from jaxgen import data
  original_iterator = data.make_train_iterator

  def late_batches(*args, **kwargs):
    for batch in original_iterator(*args, **kwargs):
      time.sleep(delay)
      yield batch

  if delay:
    data.make_train_iterator = late_batches
  original_save = checkpoints.Checkpointer.save

  def save_then_die(self, step, state, rng):
    original_save(self, step, state, rng)
    if step == kill_step:
      os.kill(os.getpid(), signal.SIGKILL)

  if kill_step is not None:
    # Return from save while orbax still writes, so the kill lands mid-write.
    checkpoints.ASYNC_SAVES = True
    checkpoints.Checkpointer.save = save_then_die
  from jaxgen import main as jaxgen_main
  jaxgen_main.run()


if __name__ == "__main__":
  main()
