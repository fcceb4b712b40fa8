"""CelebA data: the celeba_folder builder, the catalog route, crop/resize and attribute labels.

Every CelebA file here is fake and tiny, written by the test.
"""

import os
import re

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen import checkpoints
from jaxgen import data
from jaxgen import train
from jaxgen import workdir as workdir_lib
from jaxgen.data import celeba
from jaxgen.data import image_folder
from jaxgen.data import input_pipeline
from helpers import load_config

SOURCE_SHAPE = (44, 36)  # (H, W): the 218x178 originals' aspect, shrunk.


def _values(index: int) -> np.ndarray:
  """Attribute values of fake image `index` (a fixed pattern, +1/-1)."""
  return np.where((np.arange(len(celeba.ATTRIBUTES)) * 7 + index * 3) % 5 < 2, 1, -1)


def write_fake_celeba(root, num_images=12, partition=None, attribute_file=True):
  """img_align_celeba/*.jpg + list_attr_celeba.txt (+ list_eval_partition.txt)."""
  rng = np.random.default_rng(0)
  os.makedirs(os.path.join(root, celeba.IMAGE_DIR), exist_ok=True)
  names = [f"{i:06d}.jpg" for i in range(1, num_images + 1)]
  for name in names:
    pixels = rng.integers(0, 256, (*SOURCE_SHAPE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, celeba.IMAGE_DIR, name), quality=95)
  if attribute_file:
    with open(os.path.join(root, celeba.ATTRIBUTE_FILE), "w") as f:
      f.write(f"{num_images}\n{' '.join(celeba.ATTRIBUTES)}\n")
      for i, name in enumerate(names):
        f.write(f"{name}  {' '.join(str(v) for v in _values(i))}\n")
  if partition is not None:
    with open(os.path.join(root, celeba.PARTITION_FILE), "w") as f:
      f.writelines(f"{name} {split}\n" for name, split in zip(names, partition))
  return names


def _config(tmp_path, **overrides):
  """A data config for the fake folder under tmp_path (None: the overrides say where)."""
  fields = dict(name="celeba_folder",
                data_dir=str(tmp_path / "tfds") if tmp_path else None,
                manual_dir=str(tmp_path / "manual") if tmp_path else None,
                download=False, batch_size=4,
                preprocessing="unit", train_split="train", eval_split="test",
                shuffle_buffer=100, cache=False, image_size=16, center_crop=None,
                label_attribute=None)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def _split(builder, split):
  return tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))


# ------------------------------------------------------------------ crop and resize
def test_center_crop_and_resize_closed_form():
  image = tf.reshape(tf.range(8 * 6 * 3) % 251, (8, 6, 3))
  image = tf.cast(image, tf.uint8)
  # A 4-px crop resized to 4 px is the centred block itself: rows 2-5, columns 1-4.
  np.testing.assert_array_equal(input_pipeline.center_crop_and_resize(image, 4, 4),
                                image.numpy()[2:6, 1:5])
  # None = the largest centred square (6x6 of 8x6): rows 1-6.
  np.testing.assert_array_equal(input_pipeline.center_crop_and_resize(image, 6),
                                image.numpy()[1:7])
  flat = tf.fill((218, 178, 3), tf.constant(77, tf.uint8))
  out = input_pipeline.center_crop_and_resize(flat, 64, 140)
  assert out.shape == (64, 64, 3) and out.dtype == tf.uint8
  assert np.all(out.numpy() == 77)
  assert celeba.crop_size(218, 178) == 140 and celeba.crop_size(44, 36) == 28


# ------------------------------------------------------------------ celeba_folder
def test_folder_builds_cropped_faces_with_attributes_and_labels(tmp_path):
  names = write_fake_celeba(tmp_path / "manual")
  config = _config(tmp_path, label_attribute="Smiling")
  info = data.get_dataset_info(config)
  # 12 images, no partition file: the official proportions of sorted names -> 10/1/1.
  assert info.num_examples == {"train": 10, "validation": 1, "test": 1}
  assert info.image_shape == (16, 16, 3)
  assert (info.num_classes, info.label_names) == (2, ("not Smiling", "Smiling"))

  builder = data.get_builder(config)
  train_split = _split(builder, "train")
  assert [n.decode() for n in train_split["file_name"]] == names[:10]
  smiling = celeba.ATTRIBUTES.index("Smiling")
  for i in range(10):
    source = tf.io.decode_jpeg(tf.io.read_file(
        str(tmp_path / "manual" / celeba.IMAGE_DIR / names[i])))
    # PNG storage is lossless: exactly the crop (28 px of 36) resized to 16.
    np.testing.assert_array_equal(train_split["image"][i],
                                  input_pipeline.center_crop_and_resize(source, 16, 28))
    for j, attribute in enumerate(celeba.ATTRIBUTES):
      assert train_split["attributes"][attribute][i] == (_values(i)[j] > 0)

  batches = list(data.make_eval_batches(config, split="train"))
  labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
  np.testing.assert_array_equal(labels, [int(_values(i)[smiling] > 0) for i in range(10)])
  assert batches[0]["image"].shape == (4, 16, 16, 3)
  batch = next(data.make_train_iterator(config, seed=0))
  assert batch["label"].dtype == np.int32 and set(batch["label"]) <= {0, 1}
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_folder_uses_the_partition_file(tmp_path):
  write_fake_celeba(tmp_path / "manual", num_images=6, partition=[0, 2, 1, 0, 2, 2])
  info = data.get_dataset_info(_config(tmp_path))
  assert info.num_examples == {"train": 2, "validation": 1, "test": 3}
  assert info.num_classes is None  # No label_attribute: unlabelled.


def test_folder_missing_attribute_file_fails_naming_it(tmp_path):
  write_fake_celeba(tmp_path / "manual", num_images=2, attribute_file=False)
  with pytest.raises(data.DatasetNotPreparedError,
                     match=r"celeba_folder.*missing.*list_attr_celeba\.txt"):
    data.get_dataset_info(_config(tmp_path))


def test_folder_attribute_file_must_name_every_attribute(tmp_path):
  root = tmp_path / "manual"
  write_fake_celeba(root, num_images=2)
  path = root / celeba.ATTRIBUTE_FILE
  lines = path.read_text().splitlines()
  lines[1] = lines[1].replace("Smiling", "Grinning")
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=r"lacks the CelebA attribute\(s\) Smiling"):
    data.get_dataset_info(_config(tmp_path))


def test_folder_corrupt_jpeg_fails_naming_the_file(tmp_path):
  root = tmp_path / "manual"
  names = write_fake_celeba(root, num_images=3)
  bad = root / celeba.IMAGE_DIR / names[1]
  bad.write_bytes(b"not a jpeg")
  with pytest.raises(image_folder.ImageReadError,
                     match=rf"Cannot read image {re.escape(str(bad))}: Unknown image file "
                           rf"format.*Fix or delete the file"):
    data.get_dataset_info(_config(tmp_path))


def test_folder_truncated_jpeg_fails_naming_the_file(tmp_path):
  root = tmp_path / "manual"
  names = write_fake_celeba(root, num_images=3)
  bad = root / celeba.IMAGE_DIR / names[2]
  bad.write_bytes(bad.read_bytes()[:200])
  with pytest.raises(image_folder.ImageReadError,
                     match=rf"Cannot read image {re.escape(str(bad))}: "):
    data.get_dataset_info(_config(tmp_path))


def test_folder_bad_attribute_value_names_file_line_and_allowed_values(tmp_path):
  root = tmp_path / "manual"
  write_fake_celeba(root, num_images=3)
  path = root / celeba.ATTRIBUTE_FILE
  lines = path.read_text().splitlines()
  values = lines[3].split()
  values[1 + celeba.ATTRIBUTES.index("Bald")] = "x"
  lines[3] = " ".join(values)
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 4: attribute Bald of "
                                       rf"000002.jpg is 'x'; the values allowed are 1 \(has "
                                       rf"it\) and -1 or 0 \(has not\)"):
    data.get_dataset_info(_config(tmp_path))


def test_attribute_file_reads_zero_as_false(tmp_path):
  path = tmp_path / celeba.ATTRIBUTE_FILE
  path.write_text("2\nBald Male\na.jpg 1 0\nb.jpg -1 1\n")
  names, rows = celeba.read_attribute_file(str(path))
  assert names == ("Bald", "Male")
  assert rows["a.jpg"].tolist() == [True, False] and rows["b.jpg"].tolist() == [False, True]


def test_unknown_attribute_lists_the_datasets_attributes(tmp_path):
  write_fake_celeba(tmp_path / "manual", num_images=2)
  with pytest.raises(ValueError, match=r"data\.label_attribute='Smiley' is not an attribute "
                                       r"of dataset 'celeba_folder'.*Big_Nose.*Smiling"):
    data.get_dataset_info(_config(tmp_path, label_attribute="Smiley"))


def test_label_attribute_on_a_dataset_without_attributes_fails(data_dir):
  config = _config(None, name="mnist_5k", data_dir=data_dir, manual_dir=None,
                   image_size=None, label_attribute="Male")
  with pytest.raises(ValueError, match=r"'mnist_5k' has no boolean attributes"):
    data.get_dataset_info(config)


@pytest.mark.parametrize("overrides,message", [
    (dict(image_size=None, center_crop=8), r"data\.center_crop=8 needs data\.image_size"),
    (dict(center_crop=40), r"data\.center_crop=40 is larger than the images"),
    (dict(image_size=0), r"data\.image_size must be a positive int"),
])
def test_bad_crop_fields_fail_clearly(data_dir, overrides, message):
  config = _config(None, name="mnist_5k", data_dir=data_dir, manual_dir=None)
  config.update(overrides)
  with pytest.raises(ValueError, match=message):
    data.get_dataset_info(config)


def test_resize_is_generic(data_dir):
  """Any dataset can be resized; without the fields the pipeline is unchanged."""
  plain = _config(None, name="mnist_5k", data_dir=data_dir, manual_dir=None,
                  image_size=None)
  resized = _config(None, name="mnist_5k", data_dir=data_dir, manual_dir=None,
                    image_size=14)
  assert data.get_dataset_info(resized).image_shape == (14, 14, 1)
  big, small = next(data.make_eval_batches(plain)), next(data.make_eval_batches(resized))
  assert big["image"].shape == (4, 28, 28, 1) and small["image"].shape == (4, 14, 14, 1)
  # Halving keeps the mean intensity (antialiased), up to 8-bit rounding.
  np.testing.assert_allclose(small["image"].mean(axis=(1, 2, 3)),
                             big["image"].mean(axis=(1, 2, 3)), atol=2 / 255)


# ------------------------------------------------------------------ catalog celeb_a
def test_catalog_celeb_a_is_cropped_to_64_with_attribute_labels(tmp_path):
  config = _config(tmp_path, name="celeb_a", image_size=64, center_crop=140,
                   label_attribute="Male", download=True)  # mock_data: a no-op download.
  with tfds.testing.mock_data(num_examples=8):
    info = data.get_dataset_info(config)
    batch = next(data.make_train_iterator(config, seed=0))
  assert info.image_shape == (64, 64, 3) and info.num_classes == 2
  assert batch["image"].shape == (4, 64, 64, 3)
  assert batch["label"].dtype == np.int32 and set(batch["label"]) <= {0, 1}


def test_catalog_celeb_a_without_files_names_them(tmp_path):
  config = _config(tmp_path, name="celeb_a", image_size=64, center_crop=140)
  with pytest.raises(data.DatasetNotPreparedError,
                     match=r"img_align_celeba\.zip.*identity_CelebA\.txt.*download=True"):
    data.get_dataset_info(config)


# ------------------------------------------------------------------ a CelebA GAN run
def test_celeba_acgan_run_resumes_with_the_same_fixed_noise_samples(tmp_path):
  """AC-GAN on 'Smiling' through the loop: 2 steps, then resumed to 4 from the checkpoint."""
  write_fake_celeba(tmp_path / "manual", num_images=24)
  config = load_config("celeba_acgan", "smoke")
  config.data.data_dir = str(tmp_path / "tfds")
  config.data.manual_dir = str(tmp_path / "manual")
  config.data.eval_split = "train"  # The fake test split holds 2 faces.
  config.objective.ema_decay = 0.5
  config.train.num_steps = 2
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(config, workdir)
  assert int(first.state.step) == 2
  figure_rng = jax.random.split(jax.random.PRNGKey(config.seed), 4)[3]  # The loop's.
  sample = jax.jit(first.objective.sample, static_argnums=2)
  at_two = np.asarray(sample(first.state, figure_rng, 8))

  config.train.num_steps = 4
  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.state.step) == 4
  records = workdir_lib.read_metrics(workdir)
  assert [r["step"] for r in records if "train/d_loss_real" in r] == [2, 4]
  assert {"eval/d_loss_real", "eval/d_acc_fake", "eval/aux_acc_real"} <= set(records[-1])
  assert 0.0 <= resumed.eval_metrics["aux_acc_real"] <= 1.0

  # The checkpoint holds all of G (params, BatchNorm statistics, EMA): restoring it gives
  # the very samples of the run's final state, from the same fixed noise.
  example = {"image": np.zeros((8, 16, 16, 3), np.float32), "label": np.zeros(8, np.int32)}
  template = jax.eval_shape(resumed.objective.init_state, jax.random.PRNGKey(7), example)
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
  restored, _ = ckpt.restore_latest(template, jax.random.PRNGKey(0))
  assert int(restored.step) == 4
  final = np.asarray(sample(resumed.state, figure_rng, 8))
  np.testing.assert_array_equal(np.asarray(sample(restored, figure_rng, 8)), final)
  assert not np.array_equal(final, at_two)  # Training moved G; the noise stayed.
  assert final.shape == (8, 16, 16, 3) and final.min() >= 0.0 and final.max() <= 1.0
  for name in ("samples.png", "learning_curves.png", "attribute_pairs.png"):
    assert os.path.getsize(os.path.join(workdir, "figures", name)) > 1000, name
