"""The one input pipeline: TFDS dataset -> preprocessed numpy batches.

Every dataset, local or from the TFDS catalog, goes through the same code. The
`data` config (an ml_collections ConfigDict) names it and the preprocessing:

  name            TFDS name (`mnist`, `cifar10`, `celeb_a`, ...) or a local
                  dataset (`mnist_5k`, `sklearn_digits`).
  data_dir        TFDS data dir; None = the TFDS default.
  manual_dir      pre-downloaded source files; None = <data_dir>/downloads/manual.
  download        build a missing catalog dataset (network or manual_dir).
                  False by default: a closed network makes TFDS retry for
                  minutes, so a missing dataset fails fast instead.
  batch_size      global batch size, split evenly over JAX processes.
  preprocessing   unit | symmetric | binarize_dynamic | binarize_static.
  train_split, eval_split, shuffle_buffer, cache.
  image_size      None (keep the stored size) or S: images become S x S by a
                  centred square crop and a resize (antialiased bilinear, then
                  rounded back to 8 bits, so every preprocessing still sees
                  uint8 levels). For CelebA's 178x218 images, `center_crop=140`
                  and `image_size=64` give the usual 64x64 faces.
  center_crop     None or C: side in source pixels of the centred square crop
                  made before resizing; None = the largest centred square
                  (min(H, W)). Needs `image_size`.
  label_attribute None, or the name of a boolean attribute of a dataset with an
                  "attributes" feature (CelebA: 'Smiling', 'Male', ...): it
                  becomes the int32 "label" (0/1) of every batch.

  include_labels  None, or labels (e.g. (3,)) to keep in the training split
                  (`train_split`, in training and in passes over it), e.g. to train
                  a one-class anomaly detector on one digit; other splits are kept
                  whole.

Fields a config leaves out take their defaults from `config_lib.SECTION_DEFAULTS["data"]`.

Training pipeline order (each process reads the whole split):
  decode (TFDS) -> convert (deterministic part of the preprocessing) -> cache ->
  for each epoch e: shuffle(seed from (seed, e)) -> concatenated epochs -> skip to
  the start step -> keep this process's rows of each global batch -> [per-visit
  random part of the preprocessing, seeded by the element's position in the stream]
  -> batch(drop_remainder) -> prefetch.

Exact resume: global batch k of a run is a function of (seed, k) alone. Each epoch is
shuffled with its own seed (never `reshuffle_each_iteration`, whose draws depend on how
many iterators came before), so a run resumed at step k starts the stream at epoch
k * B // N, skips the rest of that epoch's first elements, and yields the same batches
as a run that never stopped. Resuming costs at most one pass over an epoch.

Process-count independence: process p of P keeps rows [p * B / P, (p + 1) * B / P) of
every global batch of B, so the global batch (rows in order) is the same with 1 process
or many, and so are the losses of a data-parallel step. Within an epoch the processes'
examples are disjoint and together cover the split. (Eval batches, whose order does not
matter to a mean, use `tfds.split_for_jax_process` instead.)

Binarization:
  * `binarize_dynamic` draws a fresh Bernoulli sample of the [0, 1] intensities
    each time an example is seen (a new binary image every epoch), from
    stateless ops seeded by (seed, process, element counter): deterministic for
    a seed. Eval batches binarize as `binarize_static` does: the literature's one
    fixed binarization of the test split, the same whatever the process count.
  * `binarize_static` draws one Bernoulli sample per example, seeded by a hash
    of the example's pixels and a fixed constant: the same binary image in
    every epoch, run, seed and process layout (a fixed binarized data set).

Tests: under `tfds.testing.mock_data`, builders never look prepared, so set
`data.download=True` there (its `download_and_prepare` is a no-op).
"""

import dataclasses
import functools
from typing import Any, Callable, Iterator, Optional

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgen import config_lib
from jaxgen import errors
from jaxgen import registry
from jaxgen import value_range
from jaxgen.data.builders import get_builder

Batch = dict[str, np.ndarray]

# Any fixed value: binarize_static must not depend on the run's seed.
_STATIC_BINARIZE_SEED = 20_240_601


# Re-exported here, where callers have always found it.
DatasetNotPreparedError = errors.DatasetNotPreparedError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model needs to know about a dataset.

  Attributes:
    name: the dataset name from the config.
    image_shape: (H, W, C) of the images the pipeline yields.
    num_examples: examples per split, e.g. {"train": 4500, "test": 500}.
    num_classes: number of labels, or None when the dataset has no label.
    label_names: the label names, or None.
    value_range: the interval the preprocessed images lie in (`to_unit()` maps them
      to [0, 1]).
  """
  name: str
  image_shape: tuple[int, int, int]
  num_examples: dict[str, int]
  num_classes: Optional[int]
  label_names: Optional[tuple[str, ...]]
  value_range: value_range.ValueRange


# --- Preprocessing -----------------------------------------------------------


def _converter(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
  """uint8 pixels -> float32 in the range `data.preprocessing=name` gives."""
  return lambda image: value_range.VALUE_RANGES[name].from_uint8(tf.cast(image, tf.float32))


_unit = _converter("unit")


def _bernoulli(probs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """A {0, 1} float32 sample with P(1) = probs, from a stateless op."""
  u = tf.random.stateless_uniform(tf.shape(probs), seed=seed, dtype=tf.float32)
  return tf.cast(u < probs, tf.float32)


def _binarize_static(image: tf.Tensor) -> tf.Tensor:
  # Seeded by the pixels, so the sample is a property of the example itself.
  digest = tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(image), 2**62)
  seed = tf.stack([tf.constant(_STATIC_BINARIZE_SEED, tf.int64), digest])
  return _bernoulli(_unit(image), seed)


@dataclasses.dataclass(frozen=True)
class _Preprocessing:
  """`convert` runs once per example before the cache (uint8 -> float32);
  `sample`, if set, runs every time an example is seen, with its own seed;
  `eval_convert`, if set, replaces both in eval batches."""
  convert: Callable[[tf.Tensor], tf.Tensor]
  sample: Optional[Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = None
  eval_convert: Optional[Callable[[tf.Tensor], tf.Tensor]] = None

  def for_eval(self) -> "_Preprocessing":
    """What eval batches apply: deterministic per example, whatever the process layout."""
    return self if self.eval_convert is None else _Preprocessing(self.eval_convert)


PREPROCESSING: dict[str, _Preprocessing] = {
    "unit": _Preprocessing(_unit),
    "symmetric": _Preprocessing(_converter("symmetric")),
    # Eval: one binary image per test digit, seeded by its pixels, so the test set is the
    # same for every run, batch size and process count (a per-position seed would follow
    # each process's share of the split).
    "binarize_dynamic": _Preprocessing(_unit, sample=_bernoulli,
                                       eval_convert=_binarize_static),
    "binarize_static": _Preprocessing(_binarize_static),
}


def _get_preprocessing(data_config: ml_collections.ConfigDict) -> _Preprocessing:
  return registry.lookup("preprocessing", data_config.preprocessing, PREPROCESSING,
                         "data.preprocessing")


def center_crop_and_resize(image: tf.Tensor, image_size: int,
                           crop_size: Optional[int] = None) -> tf.Tensor:
  """Centred square crop of an HWC uint8 image, resized to image_size x image_size.

  Args:
    image: (H, W, C) uint8 image (any size).
    image_size: output side length.
    crop_size: side of the centred square crop in pixels; None = min(H, W). For an odd
      margin the extra pixel is dropped at the bottom/right.

  Returns:
    (image_size, image_size, C) uint8: resized with antialiased bilinear filtering and
    rounded back to 8 bits. An image that needs neither crop nor resize is returned as is.
  """
  static = image.shape[:2]
  if static[0] == static[1] == image_size and crop_size in (None, image_size):
    return image  # Already the requested square: keep the exact pixels.
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  crop = tf.minimum(height, width) if crop_size is None else tf.constant(crop_size, tf.int32)
  tf.debugging.assert_less_equal(
      crop, tf.minimum(height, width),
      message=f"data.center_crop={crop_size} is larger than an image")
  top, left = (height - crop) // 2, (width - crop) // 2
  resized = tf.image.resize(image[top:top + crop, left:left + crop],
                            (image_size, image_size), method="bilinear", antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _attribute_names(builder: tfds.core.DatasetBuilder) -> tuple[str, ...]:
  features = builder.info.features
  if "attributes" not in features:
    return ()
  return tuple(features["attributes"].keys())


def _check_label_attribute(data_config: ml_collections.ConfigDict,
                           builder: tfds.core.DatasetBuilder) -> Optional[str]:
  """`data.label_attribute` after checking that the dataset has it (None if unset)."""
  name = data_config.label_attribute
  if not name:
    return None
  known = _attribute_names(builder)
  if not known:
    raise ValueError(
        f"data.label_attribute={name!r}, but dataset {data_config.name!r} has no boolean "
        f"attributes (its features: {', '.join(builder.info.features)}); unset "
        f"data.label_attribute.")
  if name not in known:
    raise ValueError(
        f"data.label_attribute={name!r} is not an attribute of dataset "
        f"{data_config.name!r}. Its attributes: {', '.join(known)}.")
  return name


def _check_resize(data_config: ml_collections.ConfigDict,
                  stored_shape: tuple) -> tuple[Optional[int], Optional[int]]:
  """(`data.image_size`, `data.center_crop`) after checking them against the images."""
  size, crop = data_config.image_size, data_config.center_crop
  if crop is not None and size is None:
    raise ValueError(f"data.center_crop={crop} needs data.image_size (the size to resize "
                     f"the crop to), e.g. data.image_size={crop}.")
  for field, value in (("image_size", size), ("center_crop", crop)):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < 1):
      raise ValueError(f"data.{field} must be a positive int or None, got {value!r}.")
  known = [n for n in stored_shape[:2] if n is not None]
  if crop is not None and known and crop > min(known):
    raise ValueError(
        f"data.center_crop={crop} is larger than the images of dataset "
        f"{data_config.name!r} ({stored_shape[0]}x{stored_shape[1]}); use at most "
        f"{min(known)}, or None for the largest centred square.")
  return size, crop


def get_dataset_info(data_config: ml_collections.ConfigDict) -> DatasetInfo:
  """Returns the image shape, split sizes and labels of the configured dataset.

  Also validates `data.preprocessing`, so a bad name fails before any work starts.
  """
  data_config = config_lib.with_defaults(data_config, "data")
  _get_preprocessing(data_config)
  builder = get_builder(data_config)
  features = builder.info.features
  image_shape = tuple(_image_feature(builder).shape)
  if len(image_shape) == 2:
    image_shape += (1,)
  size, _ = _check_resize(data_config, image_shape)
  if size is not None:
    image_shape = (size, size, image_shape[2])
  label = features["label"] if "label" in features else None
  is_class = isinstance(label, tfds.features.ClassLabel)
  num_classes = label.num_classes if is_class else None
  label_names = tuple(label.names) if is_class else None
  attribute = _check_label_attribute(data_config, builder)
  if attribute:
    num_classes, label_names = 2, (f"not {attribute}", attribute)
  return DatasetInfo(
      name=data_config.name,
      image_shape=image_shape,
      num_examples={k: s.num_examples for k, s in builder.info.splits.items()},
      num_classes=num_classes,
      label_names=label_names,
      value_range=value_range.of_data(data_config),
  )


# --- Pipelines ---------------------------------------------------------------


def _image_feature(builder: tfds.core.DatasetBuilder) -> Any:
  features = builder.info.features
  if "image" not in features:
    raise ValueError(f"Dataset {builder.name!r} has no 'image' feature; its "
                     f"features: {', '.join(features)}.")
  return features["image"]


def _local_batch_size(batch_size: int) -> int:
  """The per-process share of a global batch."""
  count = jax.process_count()
  if batch_size % count:
    raise ValueError(f"data.batch_size={batch_size} is not divisible by the "
                     f"number of JAX processes ({count}).")
  return batch_size // count


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True  # Same seed -> same batches.
  return options


def _read(builder, split: str, *, per_process: bool = True) -> tf.data.Dataset:
  """`split` (this process's share of it if `per_process`), decoded, in stored order."""
  return builder.as_dataset(
      split=tfds.split_for_jax_process(split) if per_process else split,
      shuffle_files=False, read_config=tfds.ReadConfig(options=_options()))


def _convert_fn(builder, preprocessing: _Preprocessing,
                data_config: Optional[ml_collections.ConfigDict] = None
                ) -> Callable[[Any], Batch]:
  """Maps a TFDS example to {"image": float32 HWC, "label": int32}.

  With `data_config`, also applies `data.image_size` / `data.center_crop` and takes the
  label from `data.label_attribute`.
  """
  feature = _image_feature(builder)
  has_label = "label" in builder.info.features
  size = crop = attribute = None
  if data_config is not None:
    size, crop = _check_resize(data_config, tuple(feature.shape))
    attribute = _check_label_attribute(data_config, builder)

  def convert(example):
    image = example["image"]
    if image.shape.rank == 2:
      image = image[..., None]
    if size is not None:
      image = center_crop_and_resize(image, size, crop)
    out = {"image": preprocessing.convert(image)}
    if attribute:
      out["label"] = tf.cast(example["attributes"][attribute], tf.int32)
    elif has_label:
      out["label"] = tf.cast(example["label"], tf.int32)
    return out

  return convert


def _apply_sample(ds: tf.data.Dataset, preprocessing: _Preprocessing,
                  seed: tf.Tensor) -> tf.data.Dataset:
  """Applies the per-visit random part to an enumerated `ds` of (position, example).

  The element's position in the whole stream picks its seed, so a stream resumed in the
  middle, or split over processes, draws what one uninterrupted stream would.
  """
  if preprocessing.sample is None:
    return ds.map(lambda index, example: example)

  def sample(index, example):
    example_seed = tf.random.experimental.stateless_fold_in(seed, index)
    return {**example, "image": preprocessing.sample(example["image"],
                                                     example_seed)}

  return ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE)


def _include_labels(ds: tf.data.Dataset, data_config: ml_collections.ConfigDict,
                    split: str) -> tf.data.Dataset:
  """Keeps the examples whose label is in `data.include_labels` (training split only)."""
  labels = data_config.include_labels
  if not labels or split != data_config.train_split:
    return ds
  if "label" not in ds.element_spec:
    raise ValueError(f"data.include_labels={tuple(labels)!r} needs labels, but dataset "
                     f"{data_config.name!r} has none; unset data.include_labels.")
  keep = tf.constant([int(v) for v in labels], tf.int32)
  return ds.filter(lambda example: tf.reduce_any(tf.equal(example["label"], keep)))


def _count_examples(ds: tf.data.Dataset, data_config: ml_collections.ConfigDict) -> int:
  """Examples in one pass of `ds` (read from its cardinality when TFDS knows it)."""
  count = int(ds.cardinality())
  if count < 0:  # Unknown after a filter (data.include_labels): count one pass.
    count = int(ds.reduce(np.int64(0), lambda n, _: n + 1))
  if not count:
    raise ValueError(
        f"The training split {data_config.train_split!r} of dataset "
        f"{data_config.name!r} has no examples for this process"
        + (f" with data.include_labels={tuple(data_config.include_labels)!r}"
           if data_config.include_labels else "") + ".")
  return count


def _epoch_seed(seed: int, epoch: tf.Tensor) -> tf.Tensor:
  """A shuffle seed for `epoch` of a run seeded `seed` (the same in every process)."""
  return tf.strings.to_hash_bucket_fast(
      tf.strings.format("jaxgen-epoch-{}-{}", (tf.constant(seed, tf.int64), epoch)), 2**62)


def make_train_iterator(data_config: ml_collections.ConfigDict, *, seed: int,
                        start_step: int = 0,
                        batch_size: Optional[int] = None) -> Iterator[Batch]:
  """Returns an endless, shuffled iterator of this process's training batches.

  The k-th batch depends only on (seed, start_step + k), so a resumed run that passes
  its restored step gets exactly the batches an uninterrupted run would have seen.

  Args:
    data_config: the `data` config.
    seed: shuffling and binarization seed; the same seed gives the same batches.
    start_step: the number of batches to leave out (the step a run resumes at).
    batch_size: global batch size; defaults to `data.batch_size`.

  Returns:
    An iterator of {"image": float32 (b, H, W, C), "label": int32 (b,)} numpy
    dicts ("label" only when the dataset has one), b = batch_size divided by
    the number of JAX processes.
  """
  data_config = config_lib.with_defaults(data_config, "data")
  preprocessing = _get_preprocessing(data_config)
  builder = get_builder(data_config)
  local_batch = _local_batch_size(batch_size or data_config.batch_size)
  split = data_config.train_split

  # Files are read in their stored order: the per-epoch shuffle below is the only
  # randomness, so the stream is reproducible from any step.
  base = _read(builder, split, per_process=False)
  base = base.map(_convert_fn(builder, preprocessing, data_config),
                  num_parallel_calls=tf.data.AUTOTUNE)
  base = _include_labels(base, data_config, split)
  if data_config.cache:
    base = base.cache()  # Shared by every epoch below: decoded once.
  examples_per_epoch = _count_examples(base, data_config)
  global_batch = local_batch * jax.process_count()
  first_element = start_step * global_batch
  first_epoch, offset = divmod(first_element, examples_per_epoch)
  buffer = data_config.shuffle_buffer
  ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(
      lambda epoch: base.shuffle(buffer, seed=_epoch_seed(seed, epoch),
                                 reshuffle_each_iteration=False))
  ds = ds.skip(offset).enumerate(start=first_element)
  if jax.process_count() > 1:
    process = jax.process_index()
    ds = ds.filter(lambda index, _: (index % global_batch) // local_batch == process)
  ds = _apply_sample(ds, preprocessing, tf.constant([seed, 0], tf.int64))
  ds = ds.batch(local_batch, drop_remainder=True)
  ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
  return iter(tfds.as_numpy(ds))


def _pad_batch(batch: Batch, size: int) -> Batch:
  """Pads a batch with zeros along axis 0 up to `size` examples."""
  n = tf.shape(batch["mask"])[0]

  def pad(x):
    x = tf.pad(x, [[0, size - n]] + [[0, 0]] * (x.shape.rank - 1))
    return tf.ensure_shape(x, [size] + x.shape[1:].as_list())

  return tf.nest.map_structure(pad, batch)


def make_eval_batches(data_config: ml_collections.ConfigDict, *,
                      split: Optional[str] = None,
                      batch_size: Optional[int] = None,
                      per_process: bool = True) -> Iterator[Batch]:
  """Returns one pass over this process's share of `split`, in a fixed order.

  Every batch has exactly b examples (b = batch_size / process count) and a
  float32 "mask" (1 for real examples, 0 for padding): the last batch is
  zero-padded so that eval steps compile once. With several processes, all
  get the same number of batches (extra ones fully masked), so they step
  together.

  Args:
    data_config: the `data` config.
    split: TFDS split; defaults to `data.eval_split` ('test').
    batch_size: global batch size; defaults to `data.batch_size`.
    per_process: False reads the whole split in every process (e.g. the few images
      every process must agree on for figures), in batches of `batch_size`.

  Returns:
    An iterator of {"image", "mask"[, "label"]} numpy dicts.
  """
  data_config = config_lib.with_defaults(data_config, "data")
  preprocessing = _get_preprocessing(data_config).for_eval()
  builder = get_builder(data_config)
  global_batch = batch_size or data_config.batch_size
  local_batch = _local_batch_size(global_batch) if per_process else global_batch
  split = split or data_config.eval_split

  ds = _read(builder, split, per_process=per_process)
  ds = ds.map(_convert_fn(builder, preprocessing, data_config),
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = _include_labels(ds, data_config, split)
  ds = ds.map(lambda ex: {**ex, "mask": tf.constant(1.0, tf.float32)})
  ds = ds.batch(local_batch)
  ds = ds.map(functools.partial(_pad_batch, size=local_batch))
  if per_process and jax.process_count() > 1:
    # even_splits gives the first processes one example more at most.
    total = builder.info.splits[split].num_examples
    per_process = -(-total // jax.process_count())
    num_batches = -(-per_process // local_batch)
    empty = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype),
                                  ds.element_spec)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(empty).repeat())
    ds = ds.take(num_batches)
  ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
  return iter(tfds.as_numpy(ds))
