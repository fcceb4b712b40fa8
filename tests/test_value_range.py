"""The data's value range: one object for the pipeline, objectives, figures and evaluators."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from jaxgen import value_range
from jaxgen.data import input_pipeline


@pytest.mark.parametrize("name, interval, levels", [
    ("unit", (0.0, 1.0), 256), ("symmetric", (-1.0, 1.0), 256),
    ("binarize_dynamic", (0.0, 1.0), 2), ("binarize_static", (0.0, 1.0), 2)])
def test_every_preprocessing_has_its_range(name, interval, levels):
  data_range = value_range.of_data(ml_collections.ConfigDict({"preprocessing": name}))
  assert data_range.interval == interval and data_range.levels == levels
  assert set(value_range.VALUE_RANGES) == set(input_pipeline.PREPROCESSING)


def test_a_config_without_preprocessing_gets_the_documented_default():
  assert value_range.of_data(ml_collections.ConfigDict({"name": "mnist_5k"})).preprocessing == "unit"


def test_unknown_preprocessing_names_the_field():
  with pytest.raises(ValueError, match="data.preprocessing"):
    value_range.of_data(ml_collections.ConfigDict({"preprocessing": "halves"}))


@pytest.mark.parametrize("name", ["unit", "symmetric"])
def test_from_uint8_is_the_pipelines_conversion_bit_for_bit(name):
  pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
  convert = input_pipeline.PREPROCESSING[name].convert
  from_pipeline = convert(tf.constant(pixels)).numpy()
  # An independent statement of each conversion, as the pipeline has always done it.
  expected = {"unit": pixels.astype(np.float32) / np.float32(255.0),
              "symmetric": pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)}
  np.testing.assert_array_equal(from_pipeline, expected[name])
  np.testing.assert_array_equal(
      value_range.VALUE_RANGES[name].from_uint8(pixels.astype(np.float32)), expected[name])


@pytest.mark.parametrize("name", ["unit", "symmetric"])
def test_to_unit_inverts_from_unit_and_maps_the_ends(name):
  data_range = value_range.VALUE_RANGES[name]
  unit = np.linspace(0.0, 1.0, 11, dtype=np.float32)
  np.testing.assert_allclose(data_range.to_unit(data_range.from_unit(unit)), unit, atol=1e-7)
  np.testing.assert_allclose(data_range.to_unit(np.float32([data_range.low, data_range.high])),
                             [0.0, 1.0])
