"""A feature network per dataset, trained once inside jaxgen and stored with a checksum.

FID-style metrics need a fixed network that maps images to features. The usual
Inception network cannot be downloaded offline, so jaxgen trains its own: the small CNN
classifier of the `classification` family (`cnn_classifier`, as in
configs/mnist_classifier.py), on the dataset's labels (MNIST digits; for CelebA one
boolean attribute through `data.label_attribute`), through the one training loop.

It is stored once under the TFDS data dir:

  <data_dir>/jaxgen_feature_nets/<dataset>/<id>/
    run/                 the classifier's training workdir (config, checkpoints, report)
    feature_net.json     id, sha256 checksum of the final checkpoint, test accuracy, ...
    reference/*.npz      cached features of real splits (see `reference_features`)

The id names the dataset, the input preprocessing and a hash of the classifier config,
so a changed recipe gets a new network instead of silently mixing numbers. Loading
verifies the checksum; a mismatch (changed or corrupted files) is an error, because
metrics from a different network are not comparable.
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_dict

from jaxgen import config_lib
from jaxgen import data as data_lib
from jaxgen import workdir as workdir_lib
from jaxgen.evaluation import examples
from jaxgen.evaluation import progress
from jaxgen.evaluation import runs

FEATURE_NETS_DIR = "jaxgen_feature_nets"
MANIFEST = "feature_net.json"
# Data fields of a run that do not carry over to its feature network (set here instead).
_RUN_ONLY_DATA_FIELDS = ("include_labels", "batch_size", "preprocessing", "shuffle_buffer",
                         "cache", "download")
# Rough CPU cost of training a feature network (compile, then steps), for the notice.
_COMPILE_SECONDS, _SECONDS_PER_STEP = 15.0, 0.1


class FeatureNetChecksumError(RuntimeError):
  """A stored feature network's files do not match its recorded checksum."""


class FeatureNetMissingError(FileNotFoundError):
  """No feature network is stored for the dataset and training it was not allowed."""


def feature_net_config(data_config: ml_collections.ConfigDict, num_steps: int = 1000,
                       smoke: bool = False) -> ml_collections.ConfigDict:
  """The classifier config of a dataset's feature network (configs/mnist_classifier.py's recipe).

  Args:
    data_config: the `data` config of the runs to evaluate (its name, image size and
      label attribute are kept; inputs are always [0, 1], like generated samples).
    num_steps: training steps.
    smoke: a tiny network and a few steps, for tests.
  """
  info = data_lib.get_dataset_info(data_config)
  if not info.num_classes:
    raise ValueError(
        f"A feature network trains on labels, but dataset {data_config.name!r} has none. "
        f"Use a labelled dataset, or for attribute datasets such as CelebA set "
        f"data.label_attribute (e.g. 'Male').")
  config = ml_collections.ConfigDict()
  config.seed = 0
  # The run's dataset fields (name, image size, folder, label attribute, ...) name the
  # data the network sees; its own schedule and input range replace the run's.
  config.data = ml_collections.ConfigDict(
      {k: v for k, v in data_config.to_dict().items() if k not in _RUN_ONLY_DATA_FIELDS})
  for field in ("data_dir", "manual_dir"):
    if field not in config.data or config.data[field] is None:
      config.data[field] = config_dict.placeholder(str)
  config.data.download = False
  config.data.batch_size = 8 if smoke else 64
  config.data.preprocessing = "unit"  # Generated samples are [0, 1]; so are its inputs.
  config.data.shuffle_buffer = 10_000
  config.data.cache = True
  config.model = ml_collections.ConfigDict(dict(
      name="cnn_classifier", image_shape=tuple(info.image_shape),
      num_classes=info.num_classes, features=(4, 8) if smoke else (32, 64),
      hidden=16 if smoke else 128))
  config.objective = ml_collections.ConfigDict(dict(name="classification"))
  config.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  config.train = ml_collections.ConfigDict(dict(
      num_steps=4 if smoke else num_steps, log_every=50, eval_every=4 if smoke else num_steps,
      checkpoint_every=4 if smoke else num_steps, max_to_keep=1, num_samples=10,
      num_reconstructions=4, progress_bar=not smoke, curve_metrics=("loss", "accuracy")))
  if smoke:
    config.train.num_eval_batches = 2
  return config


def _recipe_hash(config: ml_collections.ConfigDict) -> str:
  recipe = workdir_lib.config_to_dict(config)
  for field in ("data_dir", "manual_dir", "download"):
    recipe["data"].pop(field, None)
  recipe["train"] = {k: recipe["train"][k] for k in ("num_steps",)}
  return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]


def feature_net_id(config: ml_collections.ConfigDict) -> str:
  """`<dataset>[-<label attribute>]-<image size>-<preprocessing>-cnn-<recipe hash>`."""
  data = config.data
  shape = "x".join(str(v) for v in config.model.image_shape)
  parts = [data.name.replace("/", "_").replace(":", "_")]
  if config_lib.with_defaults(data, "data").label_attribute:
    parts.append(data.label_attribute)
  parts += [shape, data.preprocessing, "cnn", _recipe_hash(config)]
  return "-".join(parts)


def _directory_checksum(directory: str) -> str:
  """sha256 over the relative paths and contents of every file under `directory`."""
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(directory):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      digest.update(os.path.relpath(path, directory).encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()


@dataclasses.dataclass
class FeatureNet:
  """A restored, verified feature network.

  Attributes:
    id: its id (recorded with every metric computed from it).
    directory: where it is stored.
    run: the restored classifier run (config, objective, state).
    manifest: the contents of feature_net.json.
  """
  id: str
  directory: str
  run: runs.RestoredRun
  manifest: dict[str, Any]

  def __post_init__(self):
    objective = self.run.objective

    @jax.jit
    def features_and_probs(state, images_unit):
      inputs = objective.to_input_range(images_unit)
      features = objective.embed(state, inputs)
      return features, jax.nn.softmax(objective.model.apply(
          {"params": state.params["model"]}, inputs), axis=-1)

    self._apply = features_and_probs

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.run.config.model.image_shape)

  def features(self, images_unit: np.ndarray, batch_size: int = 250,
               description: str = "FID features") -> dict[str, np.ndarray]:
    """Features and class probabilities of (N, H, W, C) images in [0, 1].

    Returns:
      {"features": (N, hidden) float32, "probs": (N, classes) float32}.
    """
    images_unit = np.asarray(images_unit, np.float32)
    if tuple(images_unit.shape[1:]) != self.image_shape:
      raise ValueError(f"Feature network {self.id} takes images of shape {self.image_shape}, "
                       f"got {tuple(images_unit.shape[1:])}.")
    feats, probs = [], []
    starts = range(0, len(images_unit), batch_size)
    for start in progress.track(starts, len(starts), f"{description} ({len(images_unit):,} "
                                f"images, network {self.id})"):
      chunk = images_unit[start:start + batch_size]
      padded = np.zeros((batch_size,) + chunk.shape[1:], np.float32)
      padded[:len(chunk)] = chunk  # One shape, one compilation.
      f, p = jax.device_get(self._apply(self.run.state, jnp.asarray(padded)))
      feats.append(f[:len(chunk)])
      probs.append(p[:len(chunk)])
    return {"features": np.concatenate(feats), "probs": np.concatenate(probs)}

  def reference_features(self, data_config: ml_collections.ConfigDict, split: str,
                         max_examples: int | None = None) -> dict[str, Any]:
    """Features of a real split, cached under the network's reference/ folder.

    The cache key is the split, the example count and the network's own data
    preprocessing (images enter in [0, 1]); the dataset is the network's. With
    `max_examples`, the examples are evenly spaced over the split.

    Returns:
      {"features", "probs", "label", "num_examples", "split", "preprocessing"}.
    """
    config = self.run.config
    key = f"{split}-{config.data.preprocessing}-{max_examples or 'all'}"
    path = os.path.join(self.directory, "reference", f"{key}.npz")
    if os.path.exists(path):
      with np.load(path) as cached:
        arrays = {k: cached[k] for k in cached.files}
    else:
      data = ml_collections.ConfigDict(config.data.to_dict())
      data.data_dir = config_lib.with_defaults(data_config, "data").data_dir
      data.batch_size = 250
      # Evenly spaced examples, not the first ones: splits are often sorted by class.
      images, labels = examples.spread_examples(data, max_examples, split)
      arrays = self.features(images, description=f"features of the real {split} split")
      arrays["label"] = labels if labels is not None else np.zeros(len(images), int)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      np.savez(path + ".tmp.npz", **arrays)
      os.replace(path + ".tmp.npz", path)
    return {**arrays, "num_examples": int(len(arrays["features"])), "split": split,
            "preprocessing": config.data.preprocessing}


def feature_nets_root(data_config: ml_collections.ConfigDict) -> str:
  """<TFDS data dir>/jaxgen_feature_nets (the data dir the config resolves to)."""
  builder = data_lib.get_builder(data_config)
  return os.path.join(os.fspath(builder.data_dir_root), FEATURE_NETS_DIR)


def get_feature_net(data_config: ml_collections.ConfigDict, *, train_if_missing: bool = True,
                    num_steps: int = 1000, smoke: bool = False) -> FeatureNet:
  """Loads the dataset's feature network, training and storing it on first use.

  Args:
    data_config: the `data` config of the runs to evaluate.
    train_if_missing: train it (through `jaxgen.train.train_and_evaluate`) when absent.
    num_steps, smoke: the classifier recipe (see `feature_net_config`).

  Raises:
    FeatureNetChecksumError: the stored network's files do not match its checksum.
    FeatureNetMissingError: none is stored and train_if_missing is False.
  """
  config = feature_net_config(data_config, num_steps, smoke)
  net_id = feature_net_id(config)
  directory = os.path.join(feature_nets_root(data_config), config.data.name.replace("/", "_"),
                           net_id)
  manifest_path = os.path.join(directory, MANIFEST)
  run_dir = os.path.join(directory, "run")
  if not os.path.exists(manifest_path):
    if not train_if_missing:
      raise FeatureNetMissingError(
          f"No feature network {net_id} is stored in {directory}. Run the evaluation once "
          f"with feature-network training allowed (python -m jaxgen.evaluate "
          f"--workdir=... --train_feature_net) to train and store it.")
    from jaxgen import train  # The one training loop.
    estimate = _COMPILE_SECONDS + _SECONDS_PER_STEP * config.train.num_steps
    progress.announce(f"Training the feature network {net_id} (first use, ~{estimate:.0f} s on "
                      f"a CPU; stored in {directory} for later evaluations) ...")
    start = time.perf_counter()
    result = train.train_and_evaluate(config, run_dir)
    progress.announce(f"Feature network trained in {time.perf_counter() - start:.0f} s.")
    step = int(jax.device_get(result.state.step))
    manifest = {
        "id": net_id, "dataset": config.data.name, "preprocessing": config.data.preprocessing,
        "image_shape": list(config.model.image_shape), "num_classes": config.model.num_classes,
        "label_attribute": config_lib.with_defaults(config.data, "data").label_attribute,
        "step": step,
        "test_accuracy": float(result.eval_metrics.get("accuracy", float("nan"))),
        "checkpoint": os.path.join("run", workdir_lib.CHECKPOINTS_DIR, str(step)),
        "sha256": _directory_checksum(os.path.join(run_dir, workdir_lib.CHECKPOINTS_DIR,
                                                   str(step))),
    }
    with open(manifest_path + ".tmp", "w") as f:
      json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(manifest_path + ".tmp", manifest_path)
  with open(manifest_path) as f:
    manifest = json.load(f)
  checkpoint_dir = os.path.join(directory, manifest["checkpoint"])
  actual = _directory_checksum(checkpoint_dir) if os.path.isdir(checkpoint_dir) else "<missing>"
  if actual != manifest["sha256"]:
    raise FeatureNetChecksumError(
        f"Feature network {net_id}: the checkpoint {checkpoint_dir} has sha256 {actual}, but "
        f"{manifest_path} records {manifest['sha256']}: its files were changed or corrupted. "
        f"Metrics from a different network are not comparable. Restore the files, or delete "
        f"{directory} to train a new network (and recompute every metric that used it).")
  data_dir = config_lib.with_defaults(data_config, "data").data_dir
  run = runs.restore_run(run_dir, data_dir=data_dir)
  return FeatureNet(id=net_id, directory=directory, run=run, manifest=manifest)
