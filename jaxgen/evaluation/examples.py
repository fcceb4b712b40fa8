"""Fixed example images for figures: evenly spaced over a split, never shuffled.

Spreading the picks out matters: splits are often sorted by class (mnist_5k's test
split starts with fifty zeros), so the first N images would all show one class.
"""

from typing import Callable, Iterable, Mapping

import ml_collections
import numpy as np

from jaxgen import config_lib
from jaxgen import data as data_lib


def spread_indices(total: int, num: int) -> np.ndarray:
  """`num` evenly spaced positions in 0..total-1 (every position when num >= total)."""
  if num >= total:
    return np.arange(total)
  return np.linspace(0, total - 1, num).astype(int)


def spread_examples(data_config: ml_collections.ConfigDict, num: int | None,
                    split: str | None = None, *, within: int | None = None,
                    batch_size: int | None = None, per_process: bool = True
                    ) -> tuple[np.ndarray, np.ndarray | None]:
  """Images (and labels) at `num` evenly spaced positions of a split, in split order.

  Args:
    data_config: the run's `data` config.
    num: how many examples (None = all of them).
    split: the split (default `data.eval_split`, else "test").
    within: spread over the first `within` examples only (reads less of a large split).
    batch_size: eval batch size (default the config's).
    per_process: False makes every process read the whole split (the same picks).

  Returns:
    (images (n, H, W, C) preprocessed, labels (n,) or None when the data has none),
    n = min(num, examples available).
  """
  split = split or config_lib.with_defaults(data_config, "data").eval_split
  total = data_lib.get_dataset_info(data_config).num_examples.get(split)
  wanted = None
  images, labels, position = [], [], 0
  for batch in data_lib.make_eval_batches(data_config, split=split, batch_size=batch_size,
                                          per_process=per_process):
    real = np.flatnonzero(batch["mask"] > 0)
    if wanted is None:
      available = min(total or len(real), within or total or len(real))
      wanted = spread_indices(available, available if num is None else num)
    keep = real[np.isin(position + np.arange(len(real)), wanted)]
    images.append(batch["image"][keep])
    if "label" in batch:
      labels.append(batch["label"][keep])
    position += len(real)
    if len(wanted) == 0 or position > wanted[-1]:
      break
  if not images:
    raise ValueError(f"Split {split!r} of dataset {data_config.name!r} is empty.")
  return np.concatenate(images), (np.concatenate(labels) if labels else None)



def collect(batches: Iterable[Mapping[str, np.ndarray]],
            fn: Callable[[int, Mapping[str, np.ndarray]], Mapping[str, object]],
            max_examples: int | None = None) -> dict[str, np.ndarray]:
  """The values `fn(i, batch_i)` of every unpadded example, concatenated in split order.

  Args:
    batches: eval batches with "image" and a "mask" (0 = padding; all 1 if absent).
    fn: per batch, {name: (B, ...) values or None (skipped)}.
    max_examples: stop after this many examples (None = all).

  Raises:
    ValueError: the batches were empty.
  """
  collected: dict[str, list[np.ndarray]] = {}
  seen = 0
  for i, batch in enumerate(batches):
    keep = np.asarray(batch.get("mask", np.ones(len(batch["image"])))) > 0
    for name, value in fn(i, batch).items():
      if value is not None:
        collected.setdefault(name, []).append(np.asarray(value)[keep])
    seen += int(keep.sum())
    if max_examples and seen >= max_examples:
      break
  if not collected:
    raise ValueError("No examples: the batches were empty.")
  return {k: np.concatenate(v)[:max_examples] for k, v in collected.items()}
