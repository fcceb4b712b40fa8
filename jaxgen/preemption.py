"""SIGTERM/SIGINT as a request to checkpoint and stop, agreed on by every process.

Colab, TPU VMs and batch schedulers send SIGTERM before they take a machine away, and
a user presses Ctrl-C (SIGINT). Inside `StopSignals`, the first such signal only sets a
flag; the training loop asks `requested()` after each step, saves a checkpoint at that
step and stops. A second Ctrl-C interrupts at once, as usual.
"""

import signal
import threading

import jax
import numpy as np

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
  """Context manager turning SIGTERM/SIGINT into `requested()` for its duration.

  Outside the main thread (where Python cannot install handlers) it does nothing.
  """

  def __init__(self):
    self.signal_number: int | None = None
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is threading.main_thread():
      for sig in _SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    if self.signal_number is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # A second Ctrl-C: the user does not want to wait.
    self.signal_number = self.signal_number or signum

  def requested(self) -> int | None:
    """The signal that asks every process to stop now, or None.

    With several processes, all must stop at the same step (each saves its part of the
    checkpoint), so they share their flags in a tiny all-gather; a single process
    answers from its own flag at no cost.
    """
    if jax.process_count() == 1:
      return self.signal_number
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.signal_number or 0))
    received = [int(f) for f in np.ravel(flags) if f]
    return received[0] if received else None


def signal_name(signal_number: int) -> str:
  return signal.Signals(signal_number).name
