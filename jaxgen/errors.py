"""Errors a user can fix, kept free of heavy imports so the CLI can catch them cheaply.

The command line prints a `UserError` (and the `ValueError`s that name a bad config
field) as one paragraph without a traceback; everything else keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the command, config, data or workdir; the message says how to fix it."""


class ConfigError(UserError, ValueError):
  """A config field is missing, misspelt or out of range (the message names it)."""


class WorkdirBusyError(UserError, RuntimeError):
  """Another live process holds the workdir's lock (the message names host and PID)."""


class CheckpointError(UserError, RuntimeError):
  """No checkpoint of the workdir can be restored into the configured model."""


class NonFiniteLossError(UserError, FloatingPointError):
  """Training produced a NaN or Inf in a guarded metric or in the state."""


class DatasetNotPreparedError(UserError, RuntimeError):
  """A dataset is not in data_dir and cannot be built here (the message says how)."""


class TrainingInterrupted(Exception):
  """SIGTERM or SIGINT stopped training after a checkpoint at the current step.

  Attributes:
    signal_number: the signal received (signal.SIGTERM or signal.SIGINT).
    step: the step saved; rerunning the same command resumes from it.
  """

  def __init__(self, message: str, signal_number: int, step: int):
    super().__init__(message)
    self.signal_number = signal_number
    self.step = step
