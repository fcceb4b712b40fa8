r"""Face VAEs study: Frey conv VAE, CelebA-64 all-conv VAE, FC autoencoder with latent
edits, and the speed of the CIFAR-10 ResNet VAE.

  python experiments/face_vaes/run.py --workdir=runs/face_vaes [--quick]
      [--data_dir=DIR] [--manual_dir=DIR] [--face_folder=DIR]

Each part trains through `jaxgen.train.train_and_evaluate` into DIR/<part> (a rerun
reuses finished runs), then the analyses of `face_study.py` here write figures to
DIR/figures and DIR/report.md.

Data, tried in order; nothing is ever downloaded:
  * Frey: `frey_faces` (frey_rawface.mat in the manual dir).
  * Faces (CelebA VAE and autoencoder): --face_folder (an image folder, labelled by
    subfolder if it has any), then `celeb_a`, then `celeba_folder`.
  * CIFAR-10: `cifar10` prepared in the data dir. Its steps/s are measured either way
    (on synthetic batches).
What is missing is skipped and listed in the report. With --quick, a missing dataset is
replaced by a stand-in made offline from the two photographs that ship with
scikit-learn (random crops: not faces), clearly labelled, so every model and analysis
still runs; quick runs are short (a few hundred steps) and use a narrower autoencoder.
"""

import os
import sys

from absl import flags

# `python experiments/<study>/run.py` puts only this folder on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments import common  # noqa: E402
from experiments.face_vaes import face_study  # noqa: E402
from experiments.face_vaes import throughput  # noqa: E402
from jaxgen.data import image_folder  # noqa: E402

CIFAR_TRAIN_EXAMPLES = 50_000

def define_flags() -> None:
  """Command-line flags (defined only when run as a script, so tests can import it)."""
  common.define_study_flags("Short runs; stand-in data where a dataset is missing.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
  flags.DEFINE_string("manual_dir", None, "Manual dir with source files (default "
                      "<data_dir>/downloads/manual).")
  flags.DEFINE_string("face_folder", None, "A folder of face images to use instead of "
                      "CelebA.")


def load_config(name: str, arg: str | None = None):
  """configs/<name>.py's get_config(arg), loaded by path like --config."""
  return common.load_config(f"{name}:{arg}" if arg else name)


def _locate(config, data_dir, manual_dir):
  config.data.data_dir, config.data.manual_dir = data_dir, manual_dir
  return config


def _quick(config, steps, batch=None):
  config.train.num_steps = config.train.checkpoint_every = steps
  config.train.eval_every = steps // 4
  config.train.log_every = max(1, steps // 40)
  config.train.num_eval_batches = 4
  config.train.progress_bar = True
  if batch:
    config.data.batch_size = batch
  return config


def _standin_data(config, workdir, size, grayscale, smoke):
  folder = os.path.join(workdir, "standin_data", "patches")
  if not os.path.isdir(folder):
    image_folder.write_patch_folder(folder, patches_per_image=24 if smoke else 200)
  data = config.data
  data.name, data.image_folder = "image_folder", folder
  data.data_dir, data.manual_dir = os.path.join(workdir, "standin_data", "tfds"), None
  data.image_size, data.grayscale, data.test_fraction = size, grayscale, 0.1
  for field in ("center_crop", "label_attribute"):
    if field in data:
      data[field] = None
  return face_study.Source(data, "stand-in: random crops of scikit-learn's two sample "
                           "photos (china / flower), NOT faces", stand_in=True)


def frey_source(arg, quick, smoke, workdir, data_dir, manual_dir):
  config = _locate(load_config("frey_vae", arg), data_dir, manual_dir)
  reason = face_study.unavailable_reason(config.data)
  if reason is None:
    return config, face_study.Source(config.data, "frey_faces")
  if not quick:
    return config, face_study.Source(None, "frey_faces", skipped=reason)
  # Frey's 28x20 frames have no stand-in of that shape: 28x28 grey crops instead.
  config.model.image_shape = (28, 28, 1)
  source = _standin_data(config, workdir, 28, True, smoke)
  source.skipped = reason
  return config, source


def face_source(name, arg, quick, smoke, workdir, data_dir, manual_dir, face_folder):
  tried = []
  variants = ([f"data=folder,folder={face_folder}"] if face_folder else []) + [
      "data=celeb_a", "data=celeba_folder"]
  for variant in variants:
    config = _locate(load_config(name, ",".join(filter(None, [arg, variant]))), data_dir,
                     manual_dir)
    reason = face_study.unavailable_reason(config.data)
    if reason is None:
      return config, face_study.Source(config.data, config.data.name)
    tried.append(reason)
  config = _locate(load_config(name, ",".join(filter(None, [arg, "data=folder"]))),
                   data_dir, manual_dir)
  if not quick:
    return config, face_study.Source(None, "CelebA", skipped=" / ".join(tried))
  source = _standin_data(config, workdir, 64, False, smoke)
  source.skipped = " / ".join(tried)
  return config, source


def run(workdir: str, quick: bool = False, data_dir: str | None = None,
        manual_dir: str | None = None, face_folder: str | None = None,
        smoke: bool = False, measure_speed: bool = True) -> str:
  """Runs the study; returns the path of report.md.

  Args:
    workdir: where runs, figures and report.md go.
    quick: short runs, stand-ins for missing data.
    data_dir: TFDS data dir (None = default).
    manual_dir: manual dir (None = <data_dir>/downloads/manual).
    face_folder: an image folder of faces, tried before CelebA.
    smoke: tiny configs and a few steps (tests).
    measure_speed: time the CIFAR-10 ResNet VAE's training steps.
  """
  workdir = os.path.abspath(workdir)
  fig_dir = os.path.join(workdir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  base = "smoke" if smoke else None
  parts = [_frey_part(base, quick, smoke, workdir, fig_dir, data_dir, manual_dir),
           *_face_parts(base, quick, smoke, workdir, fig_dir, data_dir, manual_dir,
                        face_folder)]
  common.say("[4/4] ResNet VAE on CIFAR-10: training speed")
  speed_config = load_config("cifar10_resnet_vae", base)
  speed = (throughput.train_steps_per_second(speed_config, num_steps=2 if smoke else 5,
                                             num_train_examples=CIFAR_TRAIN_EXAMPLES)
           if measure_speed else None)
  parts.append(_cifar_part(base, quick, workdir, fig_dir, data_dir, manual_dir))
  return face_study.write_report(workdir, parts, speed, speed_config, quick, smoke)


def _frey_part(base, quick, smoke, workdir, fig_dir, data_dir, manual_dir):
  """Trains (or reuses) and analyses the Frey conv VAE; returns its report part."""
  common.say("[1/4] Frey conv VAE")
  config, source = frey_source(base, quick, smoke, workdir, data_dir, manual_dir)
  if source.data is not None and quick and not smoke:
    _quick(config, 400)
  return face_study.run_part(
      "Frey conv VAE", "frey_vae", config, source, workdir, fig_dir,
      lambda r, c: face_study.analyse_frey(r, c, fig_dir, workdir))


def _face_parts(base, quick, smoke, workdir, fig_dir, data_dir, manual_dir, face_folder):
  """Trains (or reuses) and analyses the CelebA VAE and the autoencoder; returns both parts."""
  common.say("[2/4] CelebA-64 all-conv VAE")
  config, source = face_source("celeba_vae", base, quick, smoke, workdir, data_dir,
                               manual_dir, face_folder)
  if source.data is not None and quick and not smoke:
    _quick(config, 300, batch=64)
  vae = face_study.run_part(
      "CelebA-64 all-conv VAE (pixel-mean MSE + lambda * KL)", "celeba_vae", config, source,
      workdir, fig_dir, lambda r, c: face_study.analyse_face_vae(
          r, c, fig_dir, workdir, face_study.label_names(c)))

  common.say("[3/4] Fully connected autoencoder")
  arg = base or ("hidden=1024,latent=512" if quick else None)
  config, source = face_source("face_autoencoder", arg, quick, smoke, workdir, data_dir,
                               manual_dir, face_folder)
  if source.data is not None and quick and not smoke:
    _quick(config, 300)
  autoencoder = face_study.run_part(
      "Fully connected autoencoder with latent edits", "face_autoencoder", config, source,
      workdir, fig_dir, lambda r, c: face_study.analyse_autoencoder(r, c, fig_dir, workdir))
  return [vae, autoencoder]


def _cifar_part(base, quick, workdir, fig_dir, data_dir, manual_dir):
  """Trains the CIFAR-10 ResNet VAE where its data is prepared (not in quick mode)."""
  cifar_config = _locate(load_config("cifar10_resnet_vae", base), data_dir, manual_dir)
  reason = face_study.unavailable_reason(cifar_config.data)
  if reason is None and not quick:
    return face_study.run_part(
        "ResNet VAE on CIFAR-10", "cifar10_resnet_vae", cifar_config,
        face_study.Source(cifar_config.data, "cifar10"), workdir, fig_dir,
        lambda r, c: face_study.analyse_resnet(r, c, workdir))
  why = reason or "quick mode (a CIFAR-10 run needs hours on a CPU)"
  return face_study.skipped_part("ResNet VAE on CIFAR-10 (training)", "cifar10", why)


def main():
  """Defines the flags (here, so tests can import this module) and runs."""
  define_flags()
  common.main(lambda cfg: common.say("Wrote " + run(
      cfg.workdir, cfg.quick, cfg.data_dir, cfg.manual_dir, cfg.face_folder)))


if __name__ == "__main__":
  main()
