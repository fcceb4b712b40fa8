"""VAE analyses: checkerboard score, interpolation, aggregate KL, 2-D latent figures."""

import math
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen.evaluation import latents
from helpers import REPO
from helpers import load_config

sys.path.insert(0, REPO)  # The study's modules are imported from the repository root.
from experiments.mnist_vae_study import analysis as va  # noqa: E402


def _real_images(data_dir, split):
  config = load_config("mnist_vae", "smoke", data__data_dir=data_dir)
  batches = data_lib.make_eval_batches(config.data, split=split, batch_size=500)
  return np.concatenate([b["image"][b["mask"] > 0] for b in batches])


def _checkerboard(shape):
  h, w = shape
  return ((-1.0) ** np.add.outer(np.arange(h), np.arange(w)))[None, :, :, None]


# ------------------------------------------------------------------ checkerboard
def test_pure_checkerboard_has_all_its_power_at_nyquist():
  assert va.nyquist_power_share(_checkerboard((28, 28)), radius=0) == pytest.approx(1.0)
  stripes = np.tile((-1.0) ** np.arange(28), (28, 1))[None, :, :, None]  # (0, 1/2) only
  assert va.nyquist_power_share(stripes, radius=0) == pytest.approx(1.0)
  smooth = np.sin(2 * np.pi * np.arange(28) / 28)[None, :, None, None] * np.ones((1, 28, 28, 1))
  assert va.nyquist_power_share(smooth, radius=1) == pytest.approx(0.0, abs=1e-12)
  # An odd size has no bin at exactly 1/2: the nearest bins count, and hold most power.
  assert va.nyquist_power_share(_checkerboard((27, 27)), radius=0) > 0.6


def test_mean_power_spectrum_puts_a_checkerboard_in_the_nyquist_corner():
  spectrum = va.mean_power_spectrum(_checkerboard((28, 28)))
  assert spectrum.sum() == pytest.approx(1.0)
  assert np.unravel_index(np.argmax(spectrum), spectrum.shape) == (0, 0)  # (-1/2, -1/2)


def test_checkerboard_figure_is_readable_without_zooming(tmp_path, monkeypatch):
  """Every image cell at least 150 screen pixels wide, every row and axis labelled."""
  from jaxgen import figures
  kept = []
  monkeypatch.setattr(figures, "save_figure", lambda fig, path: kept.append(fig) or path)
  rng = np.random.default_rng(0)
  real = rng.uniform(size=(6, 28, 28, 1))
  va.save_checkerboard_figure(str(tmp_path / "c.png"), real,
                              {"A": rng.uniform(size=(6, 28, 28, 1)),
                               "B": 0.5 + 0.5 * _checkerboard((28, 28)).repeat(6, 0)})
  fig = kept[0]
  fig.canvas.draw()
  axes = np.asarray(fig.axes).reshape(3, 5)
  for ax in axes[:, :4].ravel():
    assert ax.get_window_extent().width >= 150
  assert [ax.get_ylabel() for ax in axes[:, 0]] == [
      "real test digits", "model A: prior samples", "model B: prior samples"]
  for ax in axes[:, 4]:
    assert ax.get_xlabel() == "cycles / pixel (x)" and ax.get_title()
  assert fig._suptitle is not None and "Nyquist" in fig._suptitle.get_text()


def test_checkerboard_score_is_one_on_real_images_and_high_with_artifacts(data_dir):
  test = _real_images(data_dir, "test")
  train = _real_images(data_dir, "train")[:1000]
  assert va.checkerboard_score(test, test) == pytest.approx(1.0)
  # Other real digits score close to 1...
  assert 0.8 < va.checkerboard_score(train, test) < 1.25
  # ...a faint period-2 pattern on the strokes (as a stride-2 decoder makes) far above.
  artifacts = np.clip(train * (1.0 + 0.15 * _checkerboard((28, 28))), 0.0, 1.0)
  assert va.checkerboard_score(artifacts, test) > 3.0
  # Blurring removes high frequencies: below 1.
  blurred = (train + np.roll(train, 1, axis=1) + np.roll(train, 1, axis=2)) / 3.0
  assert va.checkerboard_score(blurred, test) < 0.5


def test_checkerboard_bad_input_fails_clearly():
  with pytest.raises(ValueError, match="constant"):
    va.nyquist_power_share(np.ones((2, 8, 8, 1)))
  with pytest.raises(ValueError, match="differ in shape"):
    va.checkerboard_score(np.random.rand(2, 8, 8, 1), np.random.rand(2, 9, 9, 1))


def test_checkerboard_warning_fires_when_model_b_is_built():
  config_b = load_config("mnist_vae", "model=B,smoke")
  objective = objectives.get_objective(config_b)
  with pytest.warns(UserWarning, match=r"kernel_size=3 is not divisible by stride=2"):
    objective.init_state(jax.random.PRNGKey(0), {"image": jnp.zeros((1, 28, 28, 1))})
  assert va.build_warnings(objective, (28, 28, 1)) == [
      "ConvTranspose kernel_size=3 is not divisible by stride=2: checkerboard artifacts "
      "are likely."]
  objective_a = objectives.get_objective(load_config("mnist_vae", "model=A,smoke"))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert va.build_warnings(objective_a, (28, 28, 1)) == []


# ------------------------------------------------------------------ interpolation
def test_linear_and_spherical_interpolation():
  a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
  linear = latents.interpolate_latents(a, b, 5, "linear")
  np.testing.assert_allclose(linear[[0, 2, 4]], [a, (a + b) / 2, b])
  spherical = latents.interpolate_latents(a, b, 5, "spherical")
  np.testing.assert_allclose(spherical[[0, -1]], [a, b], atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), 3.0)  # on the circle
  np.testing.assert_allclose(spherical[2], [3 / math.sqrt(2)] * 2)
  # Parallel end points: the spherical path is the linear one.
  np.testing.assert_allclose(latents.interpolate_latents(a, 2 * a, 3, "spherical"),
                             latents.interpolate_latents(a, 2 * a, 3, "linear"))


def test_interpolation_bad_input_fails_clearly():
  with pytest.raises(ValueError, match=r"Unknown interpolation 'cubic'.*linear, spherical"):
    latents.interpolate_latents(np.zeros(2), np.ones(2), 5, "cubic")
  with pytest.raises(ValueError, match="num >= 2"):
    latents.interpolate_latents(np.zeros(2), np.ones(2), 1)
  encoded = latents.EncodedSplit(images=np.zeros((10, 4, 4, 1)), labels=np.arange(10),
                                 mu=np.zeros((10, 2)), logvar=np.zeros((10, 2)))
  with pytest.raises(ValueError, match=r"index_b=10 is out of range.*10 examples.*0\.\.9"):
    latents.latent_interpolation(None, None, encoded, 0, 10)
  with pytest.raises(ValueError, match=r"index_a=-1 is out of range"):
    latents.latent_interpolation(None, None, encoded, -1, 3)


def test_first_index_of_label_keeps_split_order():
  labels = np.array([3, 0, 9, 0, 9])
  assert va.first_index_of_label(labels, 0) == 1
  assert va.first_index_of_label(labels, 9) == 2
  with pytest.raises(ValueError, match="No example with label 7"):
    va.first_index_of_label(labels, 7)


# ------------------------------------------------------------------ aggregate KL
def test_aggregate_kl_is_zero_when_every_posterior_is_the_prior():
  kl = latents.aggregate_kl(np.zeros((50, 3)), np.zeros((50, 3)), num_samples=2000)
  assert kl["aggregate_kl_mc_nats"] == pytest.approx(0.0, abs=1e-5)
  assert kl["aggregate_kl_moment_matched_nats"] == pytest.approx(0.0, abs=1e-9)
  assert kl["mean_kl_nats"] == pytest.approx(0.0, abs=1e-9)


def test_aggregate_kl_of_identical_posteriors_is_their_closed_form_kl():
  mu, var = np.array([1.0, -0.5]), np.array([0.25, 2.0])
  expected = 0.5 * np.sum(var + mu**2 - 1 - np.log(var))
  kl = latents.aggregate_kl(np.tile(mu, (20, 1)), np.tile(np.log(var), (20, 1)), num_samples=20_000)
  assert kl["mean_kl_nats"] == pytest.approx(expected, rel=1e-6)
  assert kl["aggregate_kl_moment_matched_nats"] == pytest.approx(expected, rel=1e-6)
  assert kl["aggregate_kl_mc_nats"] == pytest.approx(
      expected, abs=4 * kl["aggregate_kl_mc_stderr_nats"])


def test_aggregate_kl_of_two_separated_spikes():
  """q = (N(-a, s^2) + N(a, s^2)) / 2 in 1-D with s << a: KL = -H(q) - E_q log p."""
  a, s, n = 3.0, 0.01, 40
  mu = np.r_[-a * np.ones(n // 2), a * np.ones(n // 2)][:, None]
  logvar = np.full((n, 1), 2 * math.log(s))
  entropy = 0.5 * math.log(2 * math.pi * math.e * s**2) + math.log(2)
  expected = -entropy + 0.5 * math.log(2 * math.pi) + 0.5 * (a**2 + s**2)
  kl = latents.aggregate_kl(mu, logvar, num_samples=20_000)
  assert kl["aggregate_kl_mc_nats"] == pytest.approx(
      expected, abs=4 * kl["aggregate_kl_mc_stderr_nats"] + 1e-3)
  # The moment-matched Gaussian N(0, a^2 + s^2) misses the two clusters: a lower bound.
  matched = 0.5 * (a**2 + s**2 - 1 - math.log(a**2 + s**2))
  assert kl["aggregate_kl_moment_matched_nats"] == pytest.approx(matched, rel=1e-6)
  assert matched < expected
  # Each spike's own KL is log 2 (the index's information) more than the mixture's.
  assert kl["mean_kl_nats"] - expected == pytest.approx(math.log(2), abs=1e-3)


def test_aggregate_kl_bounds_on_random_posteriors():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(200, 2)) * 1.5 + np.array([0.5, 0.0])
  logvar = rng.normal(size=(200, 2)) * 0.3 - 1.0
  kl = latents.aggregate_kl(mu, logvar, num_samples=20_000)
  margin = 4 * kl["aggregate_kl_mc_stderr_nats"]
  assert kl["aggregate_kl_moment_matched_nats"] <= kl["aggregate_kl_mc_nats"] + margin
  assert kl["aggregate_kl_mc_nats"] <= kl["mean_kl_nats"] + margin
  assert kl["mean_kl_nats"] - kl["aggregate_kl_mc_nats"] <= math.log(200) + margin


def test_aggregate_kl_bad_shapes_fail_clearly():
  with pytest.raises(ValueError, match=r"same shape \(N, latent\)"):
    latents.aggregate_kl(np.zeros((5, 2)), np.zeros((5, 3)))


# ------------------------------------------------------------------ 2-D latents
def test_manifold_codes_are_prior_quantiles_in_reading_order():
  codes = va.manifold_codes(grid_size=4, quantile_range=(0.1, 0.9))
  values = stats.norm.ppf(np.linspace(0.1, 0.9, 4))
  assert codes.shape == (16, 2)
  np.testing.assert_allclose(codes[:4, 0], values)       # z1 grows along a row
  np.testing.assert_allclose(codes[::4, 1], values[::-1])  # z2 shrinks down the rows


def test_latent_2d_figures_refuse_other_latent_sizes(tmp_path):
  objective = objectives.get_objective(load_config("mnist_vae", "model=C,smoke"))
  assert objective.model.latent_dim == 10
  with pytest.raises(ValueError, match=r"needs a 2-D latent space \(model\.latent_dim=2\).*"
                                       r"model\.latent_dim=10"):
    va.latent_manifold(objective, None, grid_size=3)
  with pytest.raises(ValueError, match=r"model\.latent_dim=10"):
    va.save_latent_scatter(str(tmp_path / "s.png"), np.zeros((5, 10)), None)


def test_analyze_vae_on_an_untrained_model(data_dir, tmp_path):
  config = load_config("mnist_vae", "smoke", data__data_dir=data_dir)
  objective = objectives.get_objective(config)
  state = objective.init_state(jax.random.PRNGKey(0),
                               {"image": jnp.zeros((1, 28, 28, 1), jnp.float32)})
  encoded = latents.encode_split(objective, state, data_lib.make_eval_batches(config.data),
                                 keep_images=True)
  assert len(encoded.mu) == 500 and list(encoded.labels[[0, 50, 499]]) == [0, 1, 9]
  out = va.analyze_vae(objective, state, encoded, str(tmp_path), "A",
                       figure_indices=[0, 250, 499], interpolation_pair=(0, 450),
                       num_interpolation=4, num_samples=8, manifold_size=3, kl_samples=500)
  assert out["reconstructions"].shape == (3, 28, 28, 1)
  assert {k: v.shape for k, v in out["interpolations"].items()} == {
      "linear": (4, 28, 28, 1), "spherical": (4, 28, 28, 1)}
  assert set(out["figures"]) == {"reconstructions and prior samples", "latent manifold",
                                 "test latents"}
  assert all(np.isfinite(v) for v in va.summary_row(out).values())
