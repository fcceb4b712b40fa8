"""The command line with a fault injected: `python fault_driver.py [OPTION] <jaxgen.main flags>`.

--kill_after_save_starts=N: the process sends itself SIGKILL right after the checkpoint
  save of step N has started (saves are asynchronous, so the checkpoint is still being
  written): a power cut in the middle of a save.
--sleep_per_batch=S: each training batch arrives S seconds late (the values are
  unchanged), to hold a run open while a test does something beside it.
"""

import os
import signal
import sys
import time


def main():
  kill_step, delay = None, 0.0
  argv = [sys.argv[0]]
  for arg in sys.argv[1:]:
    if arg.startswith("--kill_after_save_starts="):
      kill_step = int(arg.split("=", 1)[1])
    elif arg.startswith("--sleep_per_batch="):
      delay = float(arg.split("=", 1)[1])
    else:
      argv.append(arg)
  sys.argv = argv

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

  checkpoints.Checkpointer.save = save_then_die
  from jaxgen import main as jaxgen_main
  jaxgen_main.run()


if __name__ == "__main__":
  main()
