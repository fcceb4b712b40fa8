"""The frey_faces and image_folder builders on small fake files made here."""

import os

import ml_collections
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen import data
from jaxgen.data import builder_utils
from jaxgen.data import frey_faces
from jaxgen.data import image_folder


def _config(data_dir, **fields):
  base = dict(name="frey_faces", data_dir=str(data_dir), manual_dir=None, download=False,
              batch_size=4, preprocessing="unit", train_split="train", eval_split="test",
              shuffle_buffer=100, cache=True)
  base.update(fields)
  return ml_collections.ConfigDict(base)


def _whole_split(builder, split):
  return tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))


def _files_under(path):
  return sorted(os.path.relpath(os.path.join(root, f), path)
                for root, _, files in os.walk(path) for f in files) if os.path.exists(path) else []


# --- Frey faces ----------------------------------------------------------------


def _write_fake_frey(manual_dir, num_frames=30):
  """A fake frey_rawface.mat: `ff` (560, n) uint8; frame i's pixels encode i."""
  os.makedirs(manual_dir, exist_ok=True)
  rng = np.random.default_rng(0)
  ff = rng.integers(0, 256, (28 * 20, num_frames)).astype(np.uint8)
  ff[0] = np.arange(num_frames)  # Pixel (0, 0) of frame i is i.
  path = os.path.join(manual_dir, frey_faces.FILE_NAME)
  scipy.io.savemat(path, {"ff": ff})
  return path, ff


def test_frey_faces_builds_from_manual_file(tmp_path, monkeypatch):
  path, ff = _write_fake_frey(str(tmp_path / "manual"))
  monkeypatch.setattr(frey_faces, "MD5", builder_utils.file_md5(path))
  config = _config(tmp_path / "tfds", manual_dir=str(tmp_path / "manual"))
  info = data.get_dataset_info(config)
  # 30 frames: the last ceil(10%) = 3 are the test split.
  assert info.image_shape == (28, 20, 1)
  assert info.num_examples == {"train": 27, "test": 3}
  assert info.num_classes is None
  builder = data.get_builder(config)
  train, test = _whole_split(builder, "train"), _whole_split(builder, "test")
  assert train["image"].shape == (27, 28, 20, 1) and train["image"].dtype == np.uint8
  # Frames are columns of ff, 28x20 row-major, in video order.
  np.testing.assert_array_equal(train["image"][5, :, :, 0], ff[:, 5].reshape(28, 20))
  np.testing.assert_array_equal(test["image"][:, 0, 0, 0], [27, 28, 29])
  batch = next(data.make_train_iterator(config, seed=0))
  assert batch["image"].shape == (4, 28, 20, 1) and batch["image"].dtype == np.float32
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  assert frey_faces.split_sizes(1965) == (1768, 197)


def test_frey_wrong_checksum_fails_clearly_and_leaves_nothing(tmp_path):
  path, _ = _write_fake_frey(str(tmp_path / "manual"))  # Its md5 is not Roweis' file's.
  data_dir = tmp_path / "tfds"
  config = _config(data_dir, manual_dir=str(tmp_path / "manual"))
  with pytest.raises(frey_faces.ChecksumError) as excinfo:
    data.get_builder(config)
  message = str(excinfo.value)
  assert path in message and frey_faces.MD5 in message
  assert builder_utils.file_md5(path) in message and frey_faces.URL in message
  assert _files_under(str(data_dir)) == [] and not data_dir.exists()
  # The manual file is left alone.
  assert os.path.exists(path)


def test_frey_missing_file_fails_fast_without_download(tmp_path, monkeypatch):
  config = _config(tmp_path / "tfds", manual_dir=str(tmp_path / "empty_manual"))
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      lambda *a, **k: pytest.fail("a build or download was attempted"))
  with pytest.raises(data.DatasetNotPreparedError, match="frey_rawface.mat") as excinfo:
    data.get_builder(config)
  assert "--config.data.download=True" in str(excinfo.value)
  assert not (tmp_path / "tfds").exists()


def test_frey_file_without_ff_variable_is_rejected(tmp_path, monkeypatch):
  manual = tmp_path / "manual"
  manual.mkdir()
  path = str(manual / frey_faces.FILE_NAME)
  scipy.io.savemat(path, {"faces": np.zeros((560, 3), np.uint8)})
  monkeypatch.setattr(frey_faces, "MD5", builder_utils.file_md5(path))
  with pytest.raises(ValueError, match="variable 'ff'"):
    data.get_builder(_config(tmp_path / "tfds", manual_dir=str(manual)))
  assert not (tmp_path / "tfds").exists()


# --- Image folders -------------------------------------------------------------


def _write_images(folder, colours, size=(24, 16)):
  """Solid-colour images (w, h) = size, one per colour; returns the paths."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i, colour in enumerate(colours):
    path = os.path.join(folder, f"img_{i:02d}.png")
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)
    paths.append(path)
  return paths


def _folder_config(tmp_path, folder, **fields):
  fields = {"image_size": 8, **fields}
  return _config(tmp_path / "tfds", name="image_folder", batch_size=2,
                 image_folder=None if folder is None else str(folder), **fields)


def test_image_folder_flat_layout(tmp_path):
  folder = tmp_path / "faces"
  _write_images(str(folder), [(10 * i, 0, 0) for i in range(10)])
  (folder / "notes.txt").write_text("not an image")
  config = _folder_config(tmp_path, folder, test_fraction=0.2)
  info = data.get_dataset_info(config)
  assert info.image_shape == (8, 8, 3)
  assert info.num_examples == {"train": 8, "test": 2}
  assert info.num_classes is None
  builder = data.get_builder(config)
  train = _whole_split(builder, "train")
  assert train["image"].shape == (8, 8, 8, 3) and train["image"].dtype == np.uint8
  assert "label" not in train
  # Every stored image is one of the solid colours, whole.
  reds = sorted(int(img[0, 0, 0]) for img in train["image"])
  assert all(np.all(img == img[0, 0]) for img in train["image"])
  test_reds = sorted(int(img[0, 0, 0]) for img in _whole_split(builder, "test")["image"])
  assert sorted(reds + test_reds) == [10 * i for i in range(10)]


def test_image_folder_classes_from_subfolders_and_grayscale(tmp_path):
  folder = tmp_path / "anime"
  _write_images(str(folder / "cats"), [(200, 0, 0)] * 5)
  _write_images(str(folder / "dogs"), [(0, 0, 200)] * 5, size=(16, 30))
  (folder / "dogs" / "deeper").mkdir()
  _write_images(str(folder / "dogs" / "deeper"), [(0, 0, 200)] * 5)
  config = _folder_config(tmp_path, folder)
  info = data.get_dataset_info(config)
  assert info.label_names == ("cats", "dogs") and info.num_classes == 2
  # Per class round(10%): 5 cats -> 0 (round half to even) test, 10 dogs -> 1.
  assert info.num_examples == {"train": 14, "test": 1}
  train = _whole_split(data.get_builder(config), "train")
  red = train["image"][..., 0].mean(axis=(1, 2)) > 100
  np.testing.assert_array_equal(red, train["label"] == 0)  # cats are red, dogs blue.
  grey = data.get_dataset_info(_folder_config(tmp_path, folder, grayscale=True))
  assert grey.image_shape == (8, 8, 1)
  batch = next(data.make_train_iterator(_folder_config(tmp_path, folder), seed=0))
  assert batch["label"].dtype == np.int32 and batch["image"].shape == (2, 8, 8, 3)
  # Once built, the dataset reads (with its labels) even if the folder is gone.
  os.rename(folder, tmp_path / "moved")
  assert data.get_dataset_info(config).label_names == ("cats", "dogs")


def test_image_folder_cache_is_keyed_by_folder_and_size(tmp_path):
  for name, colour in (("a", 50), ("b", 150)):
    _write_images(str(tmp_path / name), [(colour, colour, colour)] * 4)
  builders = [image_folder.make_builder(_folder_config(tmp_path, tmp_path / name, image_size=s))
              for name, s in (("a", 8), ("b", 8), ("a", 4))]
  assert len({b.data_dir for b in builders}) == 3
  values = [int(_whole_split(data.get_builder(_folder_config(tmp_path, tmp_path / name)),
                             "train")["image"][0, 0, 0, 0]) for name in ("a", "b")]
  assert values == [50, 150]


def test_image_folder_corrupt_jpeg_fails_naming_it_and_leaves_nothing(tmp_path):
  folder = tmp_path / "faces"
  _write_images(str(folder), [(0, 100, 0)] * 6)
  good = Image.fromarray(np.zeros((20, 20, 3), np.uint8))
  good.save(str(folder / "broken.jpg"))
  content = (folder / "broken.jpg").read_bytes()
  (folder / "broken.jpg").write_bytes(content[: len(content) // 2])  # Truncated JPEG.
  config = _folder_config(tmp_path, folder, test_fraction=0.5)
  with pytest.raises(image_folder.ImageReadError) as excinfo:
    data.get_builder(config)
  message = str(excinfo.value)
  assert str(folder / "broken.jpg") in message and "data.bad_images='skip'" in message
  assert not (tmp_path / "tfds").exists()
  # 'skip' leaves the file out and builds the rest.
  info = data.get_dataset_info(_folder_config(tmp_path, folder, test_fraction=0.5,
                                              bad_images="skip"))
  assert sum(info.num_examples.values()) == 6


@pytest.mark.parametrize("fields,error,pattern", [
    (dict(image_folder="/no/such/folder"), data.DatasetNotPreparedError, "/no/such/folder"),
    (dict(bad_images="ignore"), ValueError, "data.bad_images"),
    (dict(center_crop=20), ValueError, "data.center_crop"),
    (dict(test_fraction=1.5), ValueError, "data.test_fraction"),
    (dict(image_folder=None), ValueError, "data.image_folder"),
])
def test_image_folder_bad_fields_fail_clearly(tmp_path, fields, error, pattern):
  folder = tmp_path / "faces"
  _write_images(str(folder), [(1, 2, 3)] * 3)
  config = _folder_config(tmp_path, folder)
  for key, value in fields.items():
    config[key] = value
  with pytest.raises(error, match=pattern):
    data.get_builder(config)
  assert not (tmp_path / "tfds").exists()


def test_image_folder_relative_path_is_read_from_the_manual_dir(tmp_path):
  _write_images(str(tmp_path / "manual" / "mine"), [(9, 9, 9)] * 4)
  config = _folder_config(tmp_path, "mine", manual_dir=str(tmp_path / "manual"))
  assert sum(data.get_dataset_info(config).num_examples.values()) == 4


def test_patch_folder_stand_in_has_two_classes(tmp_path):
  folder = image_folder.write_patch_folder(str(tmp_path / "patches"), patches_per_image=3,
                                           patch_size=32)
  assert sorted(os.listdir(folder)) == ["china", "flower"]
  assert len(os.listdir(os.path.join(folder, "china"))) == 3
