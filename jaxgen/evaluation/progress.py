"""Progress of long evaluations on stderr: a start line always, a bar with an ETA on a TTY.

IWAE-k over a whole split or FID features of thousands of samples take minutes; a
silent command looks hung. Every loop announces how many steps it will take; on a
terminal a tqdm bar then shows the rate and the time left (logs get the line only).
"""

import math
import sys
from typing import Iterable, Iterator, TypeVar

import ml_collections
import tqdm

from jaxgen import data as data_lib

T = TypeVar("T")


def announce(message: str) -> None:
  """One line on stderr (stdout stays for results)."""
  print(message, file=sys.stderr, flush=True)


def track(items: Iterable[T], total: int | None, description: str,
          units: str = "batches") -> Iterator[T]:
  """Yields `items`, after a start line naming `total`, with a bar when stderr is a TTY.

  Args:
    items: what the loop iterates over.
    total: how many items there will be (None = unknown).
    description: what the loop computes, e.g. "IWAE-100 bounds on test".
    units: what `total` counts, plural.
  """
  count = "an unknown number of" if total is None else f"{total:,}"
  announce(f"{description}: {count} {units}")
  bar = tqdm.tqdm(items, total=total, desc=description, unit=units[:-1], file=sys.stderr,
                  disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True)
  with bar:
    yield from bar


def num_eval_batches(data_config: ml_collections.ConfigDict, split: str,
                     max_examples: int | None = None,
                     batch_size: int | None = None) -> int | None:
  """Batches `data.make_eval_batches` yields for (at most `max_examples` of) a split."""
  total = data_lib.get_dataset_info(data_config).num_examples.get(split)
  if total is None:
    return None
  if max_examples:
    total = min(total, max_examples)
  return math.ceil(total / (batch_size or data_config.batch_size))
