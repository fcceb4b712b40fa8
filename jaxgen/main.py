r"""Command line: train and evaluate one config.

  python -m jaxgen.main --config=configs/mnist_vae.py --workdir=runs/vae_a
  jaxgen-train --config=configs/mnist_vae.py:model=B --workdir=runs/vae_b \
      --config.train.num_steps=5000

Rerunning the same command on the same workdir resumes from its latest checkpoint
(--resume_step=N: from checkpoint N). `--config.<field>=None` sets a field that may be
None, e.g. --config.train.num_eval_batches=None (the whole eval split).

A mistake in the command, config, data or workdir prints one paragraph and exits with
status 2 (--verbosity=1 or JAXGEN_TRACEBACK=1 adds the traceback). SIGTERM and SIGINT
save a checkpoint and exit with 128 + the signal number. Logs show jaxgen's own INFO
lines and other libraries' warnings; any --verbosity shows every library's lines.
"""

import difflib
import os
import re
import signal
import sys
import time
import traceback
from typing import Any, Iterator, Sequence

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from jaxgen import config_lib
from jaxgen import errors

USER_ERROR_EXIT_CODE = 2
# Printed as one paragraph without a traceback (ValueError covers TypeErrors of flags).
USER_ERRORS = (errors.UserError, ValueError, FileNotFoundError, flags.Error)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_HELP_ARGS = ("-h", "--help", "-help", "--helpfull", "--helpshort", "-?")


class _NoneOr(flags.ArgumentParser):
  """Parses the literal `None` as None and anything else with `parser`."""

  def __init__(self, parser: flags.ArgumentParser):
    self._parser = parser

  def parse(self, argument: Any) -> Any:
    if isinstance(argument, str) and argument.strip() == "None":
      return None
    return self._parser.parse(argument)

  def flag_type(self) -> str:
    return self._parser.flag_type()


# Fields documented as None-able (placeholders) must be settable back to None; where a
# field may not be None, config_lib.validate says so.
for _type, _parser in ((int, flags.IntegerParser()), (float, flags.FloatParser()),
                       (str, flags.ArgumentParser())):
  config_flags.register_flag_parser_for_type(_type, _NoneOr(_parser))


def _define_flags(flag_values: flags.FlagValues) -> None:
  """The command's flags other than --config (defined once the config is loaded)."""
  flags.DEFINE_string("workdir", None,
                      "Directory for checkpoints, metrics, figures, report.",
                      flag_values=flag_values)
  flags.DEFINE_integer("resume_step", None,
                       "Resume from this checkpoint step (default: the latest).",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_bool("jax_distributed", False,
                    "Call jax.distributed.initialize() first (multi-host TPU pods / GPU "
                    "clusters). On TPU pods and SLURM the cluster is detected; elsewhere "
                    "give the three flags below.", flag_values=flag_values)
  flags.DEFINE_string("coordinator_address", None,
                      "With --jax_distributed: host:port of process 0's coordinator.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_processes", None, "With --jax_distributed: number of processes.",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("process_id", None, "With --jax_distributed: this process's index.",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_string("compilation_cache_dir", None,
                      "JAX persistent compilation cache (default ~/.cache/jaxgen/...); "
                      "'none' = off.", flag_values=flag_values)
  if "verbosity" not in flag_values:  # absl's own flag, shared with its logging.
    flags.DEFINE_flag(flags.FLAGS["verbosity"], flag_values=flag_values)


def _split_config_spec(argv: Sequence[str]) -> tuple[str | None, list[str]]:
  """(the --config value, argv without it)."""
  spec, rest, args = None, [argv[0]], list(argv[1:])
  while args:
    arg = args.pop(0)
    if arg == "--":
      rest += [arg, *args]
      break
    match = re.fullmatch(r"--?config(?:=(.*))?", arg, re.S)
    if match is None:
      rest.append(arg)
    elif match.group(1) is not None:
      spec = match.group(1)
    elif args:
      spec = args.pop(0)
  return spec, rest


def _override_paths(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
  """(argument, dotted field path) of each `--config.<path>[=value]` before any `--`."""
  for arg in argv:
    if arg == "--":
      break
    match = re.match(r"--?(?:no)?config\.([^=]+)", arg)
    if match is not None:
      yield arg, match.group(1)


def _declare_overridden_defaults(config: ml_collections.ConfigDict,
                                 argv: Sequence[str]) -> None:
  """Adds the fields that `--config.<section>.<field>` overrides and the config leaves at
  their `config_lib.SECTION_DEFAULTS`, so any config takes them (e.g.
  --config.train.cpu_devices=2 or --config.optimizer.eps=1e-4)."""
  for _, path in _override_paths(argv):
    section, _, field = path.partition(".")
    default = config_lib.SECTION_DEFAULTS.get(section, {}).get(field)
    if (default is not None and section in config
        and isinstance(config[section], ml_collections.ConfigDict)
        and field not in config[section]):
      config[section][field] = default


def _check_override_names(config: ml_collections.ConfigDict, argv: Sequence[str]) -> None:
  """Fails on `--config.<field>` naming no field, suggesting the closest ones."""
  for arg, path in _override_paths(argv):
    node, parents = config, []
    for part in path.split("."):
      if "[" in part:  # Indexing into a tuple: ml_collections checks it.
        break
      if not isinstance(node, ml_collections.ConfigDict):
        raise errors.ConfigError(
            f"Config field {'.'.join(parents)} is a value, not a section, so {arg!r} "
            f"names no field.")
      if part not in node:
        section = ".".join(parents) or "the config"
        known = sorted(node.keys())
        close = difflib.get_close_matches(part, known, n=1)
        guess = f"; did you mean {'.'.join([*parents, close[0]])}?" if close else "."
        raise errors.ConfigError(
            f"Unknown config field {'.'.join([*parents, part])} in {arg!r}{guess} Fields "
            f"of {section}: {', '.join(known)}.")
      node, parents = node[part], [*parents, part]


def parse_command_line(argv: Sequence[str], flag_values: flags.FlagValues
                       ) -> ml_collections.ConfigDict | None:
  """Loads the config named by --config, applies the overrides and parses the flags.

  The config is loaded by `config_lib.load` (the loader tests and studies use), so a
  missing file or a bad variant argument is one clear error.

  Args:
    argv: the command line, program name first.
    flag_values: fresh flags to define and parse (absl's global FLAGS for the CLI).

  Returns:
    The locked config with overrides, or None when help was requested (and printed).

  Raises:
    UserError: a missing or unknown flag, a misspelt field, an unparsable value.
    FileNotFoundError: no such config file.
    ConfigError: a bad config argument (after the file name).
  """
  _define_flags(flag_values)
  argv = flag_values.read_flags_from_files(list(argv), force_gnu=False)
  spec, argv = _split_config_spec(argv)
  if any(arg in _HELP_ARGS for arg in argv[1:]):
    print(__doc__.strip() + "\n\nFlags:\n  --config: config file (configs/*.py[:args]); "
          "--config.<field>=<value> overrides a field.\n"
          + flag_values.get_help(include_special_flags=False), file=sys.stdout)
    return None
  if not spec:
    raise errors.UserError("--config is required, e.g. "
                           "--config=configs/mnist_vae.py --workdir=runs/vae_a.")
  try:
    config = config_lib.load(spec)
  except ValueError as e:  # A bad variant argument: say where it came from.
    raise errors.ConfigError(f"--config={spec}: {e}") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.ConfigError(f"{spec}: get_config() returned {type(config).__name__}, "
                             f"not an ml_collections.ConfigDict.")
  _declare_overridden_defaults(config, argv)
  _check_override_names(config, argv)
  try:
    config_flags.DEFINE_config_dict(
        "config", config, "Config file (configs/*.py[:args]).", lock_config=True,
        flag_values=flag_values, sys_argv=argv)
    extra = flag_values(argv)
  except flags.Error as e:
    # absl's message names the flag and value; one line, with how overrides work.
    raise errors.UserError(
        f"{' '.join(str(e).split())}. Config fields are set with "
        f"--config.<field>=<value> (tuples as --config.<field>=\"(1, 2)\"; None where the "
        f"field allows it).") from None
  if len(extra) > 1:
    raise errors.UserError(f"Unexpected arguments: {' '.join(extra[1:])} (flags take the "
                           f"form --name=value).")
  if not flag_values.workdir:
    raise errors.UserError("--workdir is required: the directory for checkpoints, "
                           "metrics, figures and the report.")
  return config


def _configure_logging(flag_values: flags.FlagValues) -> None:
  """Keeps jaxgen's INFO lines and other libraries' warnings, unless --verbosity is set."""
  verbose = not flag_values["verbosity"].using_default_value
  # TensorFlow reads this when it is imported (after this): hide its INFO/WARNING lines.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
  logging.use_absl_handler()
  if verbose:
    return
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OwnInfoFilter) for f in handler.filters):
    handler.addFilter(_OwnInfoFilter())


class _OwnInfoFilter:
  """Passes warnings and errors, and INFO lines logged by jaxgen itself."""

  def filter(self, record) -> bool:
    if str(record.msg).startswith("Variant folder %s has no"):
      return False  # TFDS probing a dataset not built yet; jaxgen logs that it builds it.
    return record.levelno >= logging.converter.STANDARD_WARNING or (
        record.pathname.startswith(_PACKAGE_DIR))


def _train(config: ml_collections.ConfigDict, flag_values: flags.FlagValues, *,
           quiet: bool) -> None:
  """Fails on objective and model fields before TensorFlow loads, then trains."""
  started = time.perf_counter()
  host_device_count = None
  if not flag_values.jax_distributed:
    from jaxgen import host_devices
    host_device_count = host_devices.configure(config)  # Before JAX reads the flag.
  import jax
  if flag_values.jax_distributed:
    # CPU processes exchange arrays through gloo (accelerators use their own links).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=flag_values.coordinator_address,
                               num_processes=flag_values.num_processes,
                               process_id=flag_values.process_id)
  from jaxgen import objectives
  objectives.get_objective(config)  # Bad names, curves and model fields fail here.
  if host_device_count and jax.default_backend() == "cpu":
    logging.info("Each batch is split over %d CPU host devices (train.cpu_devices).",
                 host_device_count)
  from jaxgen import runtime
  runtime.enable_compilation_cache(flag_values.compilation_cache_dir)  # 'none' = off.
  runtime.start_tensorflow(quiet=quiet)
  from jaxgen import train
  kwargs = {}
  if flag_values.resume_step is not None:
    kwargs["resume_step"] = flag_values.resume_step
  result = train.train_and_evaluate(config, flag_values.workdir, **kwargs)
  if jax.process_index() == 0:
    from jaxgen import reporting
    print(reporting.summary_line(
        result.objective, result.eval_metrics, result.workdir,
        config_lib.with_defaults(config.data, "data").eval_split,
        time.perf_counter() - started,
        time.process_time()))


def _wants_traceback(argv: Sequence[str]) -> bool:
  if os.environ.get("JAXGEN_TRACEBACK", "") not in ("", "0"):
    return True
  joined = " ".join(argv[1:])
  match = re.search(r"(?:^|\s)--?(?:verbosity|v)[= ](-?\d+)", joined)
  return bool(match) and int(match.group(1)) >= 1


def _report(error: BaseException, argv: Sequence[str]) -> None:
  """Prints a user error as one paragraph (after the traceback if asked for)."""
  if _wants_traceback(argv):
    traceback.print_exception(error)
  message = " ".join(str(error).split()) or type(error).__name__
  if isinstance(error, errors.UserError):
    print(f"Error: {message}", file=sys.stderr)
  else:  # Possibly raised deep in a library: say where to look.
    print(f"Error ({type(error).__name__}): {message} (--verbosity=1 or "
          f"JAXGEN_TRACEBACK=1 shows the traceback)", file=sys.stderr)


def main(argv: Sequence[str], flag_values: flags.FlagValues | None = None) -> int:
  """Parses `argv` (program name first), validates the config, trains; the exit status.

  Args:
    argv: the command line.
    flag_values: where the flags are defined; a fresh FlagValues by default, so tests
      can call this repeatedly in one process.

  Returns:
    0 on success, 2 for a user error (printed as one paragraph), 128 + the signal
    number when SIGTERM/SIGINT stopped training after a checkpoint. Other exceptions
    propagate with their traceback.
  """
  flag_values = flags.FlagValues() if flag_values is None else flag_values
  try:
    config = parse_command_line(argv, flag_values)
    if config is None:
      return 0
    # Cheap and free of JAX and TensorFlow: a bad field fails in well under a second.
    config_lib.validate(config)
    if not flag_values.jax_distributed:
      # So is a busy workdir (the lock itself is taken by train_and_evaluate; in a
      # cluster process 0 takes it, after the processes have met).
      from jaxgen import workdir_lock
      workdir_lock.check_free(flag_values.workdir)
    quiet = flag_values["verbosity"].using_default_value  # Read before logging sets it.
    _configure_logging(flag_values)
    _train(config, flag_values, quiet=quiet)
  except errors.TrainingInterrupted as e:
    print(" ".join(str(e).split()), file=sys.stderr)
    return 128 + e.signal_number
  except KeyboardInterrupt:
    # Ctrl-C before training began, or a second Ctrl-C that would not wait for a save.
    print("Interrupted: nothing more was saved; the workdir keeps its last checkpoint. "
          "Rerun the same command to resume.", file=sys.stderr)
    return 128 + signal.SIGINT
  except USER_ERRORS as e:
    _report(e, argv)
    return USER_ERROR_EXIT_CODE
  return 0


def run():
  """Console-script entry point (`jaxgen-train`)."""
  sys.exit(main(sys.argv, flags.FLAGS))


if __name__ == "__main__":
  run()
