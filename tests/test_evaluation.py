"""Evaluation metrics against closed forms and their defining properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg
from scipy import stats

from jaxgen import data as data_lib
from jaxgen import objectives
from jaxgen.evaluation import anomaly
from jaxgen.evaluation import latents
from jaxgen.evaluation import likelihood
from jaxgen.evaluation import sample_quality
from helpers import load_config


# ------------------------------------------------------------------ likelihood
def _linear_gaussian(a=1.5, sigma=0.5):
  """z ~ N(0, I), x | z ~ N(a z, sigma^2 I): log p(x) = log N(x; 0, a^2 + sigma^2)."""
  def nll_fn(z, x):
    return -jnp.sum(stats_norm_logpdf(x, a * z, sigma), axis=-1)

  def exact_posterior(x):
    var = sigma**2 / (a**2 + sigma**2)
    return a * x / (a**2 + sigma**2), jnp.full_like(x, math.log(var))

  def log_px(x):
    return np.sum(stats.norm(0, math.sqrt(a**2 + sigma**2)).logpdf(np.asarray(x)), axis=-1)

  return nll_fn, exact_posterior, log_px


def stats_norm_logpdf(x, mean, std):
  return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_iwae_with_the_exact_posterior_is_log_px_for_every_k_and_chunking():
  nll_fn, posterior, log_px = _linear_gaussian()
  x = jax.random.normal(jax.random.PRNGKey(0), (7, 3)) * 2.0
  mu, logvar = posterior(x)
  # k=10 in chunks of 3 (max_decoder_batch=21 over 7 examples): the padded samples of
  # the last chunk must get zero weight, or the bound would be off by log(12 / 10).
  for k, max_batch in ((1, 4096), (10, 21), (257, 4096), (5000, 7 * 64)):
    got = likelihood.iwae_per_example(jax.random.PRNGKey(k), x, mu, logvar, nll_fn, k, max_batch)
    np.testing.assert_allclose(got, log_px(x), atol=2e-4)


def test_iwae_tightens_towards_log_px_with_a_poor_posterior():
  nll_fn, posterior, log_px = _linear_gaussian()
  x = jax.random.normal(jax.random.PRNGKey(1), (400, 2)) * 1.6
  mu, logvar = posterior(x)
  mu, logvar = 0.5 * mu + 0.3, logvar + 0.7  # A biased, too-wide q.
  elbo = likelihood.elbo_per_example(jax.random.PRNGKey(2), x, mu, logvar, nll_fn)["elbo_nats"]
  bounds = [float(jnp.mean(likelihood.iwae_per_example(
      jax.random.PRNGKey(3), x, mu, logvar, nll_fn, k, 2048))) for k in (1, 10, 100, 2000)]
  truth = float(np.mean(log_px(x)))
  assert abs(bounds[0] - float(jnp.mean(elbo))) < 0.05  # E[IWAE_1] = E[ELBO].
  assert all(b2 > b1 for b1, b2 in zip(bounds, bounds[1:])), bounds
  # A lower bound that closes 99% of the ELBO's gap to log p(x) by k = 2000.
  assert bounds[-1] <= truth + 1e-3, (bounds, truth)
  assert truth - bounds[-1] < 0.01 * (truth - bounds[0]), (bounds, truth)


@pytest.fixture(scope="module")
def vae_setup(data_dir):
  config = load_config("mnist_vae", "smoke,model=mlp")
  config.data.data_dir = data_dir
  config.data.batch_size = 32
  objective = objectives.get_objective(config)
  batch = next(data_lib.make_eval_batches(config.data))
  state = objective.init_state(jax.random.PRNGKey(0), {"image": jnp.asarray(batch["image"])})
  # A few steps, so that the posterior differs from the prior and the bounds separate.
  step = jax.jit(objective.train_step)
  for i, train_batch in zip(range(80), data_lib.make_train_iterator(config.data, seed=0)):
    state, _ = step(state, {"image": jnp.asarray(train_batch["image"])}, jax.random.PRNGKey(i))
  return config, objective, state, batch


def test_elbo_matches_the_training_loops_eval_metric(vae_setup):
  _, objective, state, batch = vae_setup
  images, rng = jnp.asarray(batch["image"]), jax.random.PRNGKey(5)
  mu, logvar = objective.encode(state, images)
  nll_fn = lambda z, x: objective.decoder_nll(state, z, x)
  ours = likelihood.elbo_per_example(rng, images, mu, logvar, nll_fn)
  loop = objective.eval_step(state, {"image": images}, rng)
  np.testing.assert_allclose(ours["elbo_nats"], loop["elbo_nats"], rtol=1e-5)
  np.testing.assert_allclose(ours["kl_nats"], loop["kl_nats"], rtol=1e-5)


def test_discretized_logistic_bounds_match_the_objective():
  """The discretized logistic decoder of the CIFAR-10 ResNet VAE (tiny)."""
  config = load_config("cifar10_resnet_vae", "smoke,likelihood=logistic")
  objective = objectives.get_objective(config)
  levels = jax.random.randint(jax.random.PRNGKey(0), (4, 32, 32, 3), 0, 256)
  images = levels.astype(jnp.float32) / 127.5 - 1.0  # 8-bit values on [-1, 1].
  state = objective.init_state(jax.random.PRNGKey(1), {"image": images})
  rng = jax.random.PRNGKey(2)
  mu, logvar = objective.encode(state, images)
  nll_fn = lambda z, x: objective.decoder_nll(state, z, x)
  ours = likelihood.elbo_per_example(rng, images, mu, logvar, nll_fn)
  np.testing.assert_allclose(ours["elbo_nats"], objective.eval_step(
      state, {"image": images}, rng)["elbo_nats"], rtol=1e-5)


def test_gaussian_bounds_match_the_objective(data_dir):
  config = load_config("mnist_vae", "smoke,model=mlp")
  config.objective.likelihood = "gaussian"
  config.objective.learn_scale = True  # The scale lives in the state: read from there.
  objective = objectives.get_objective(config)
  images = jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 28, 1))
  state = objective.init_state(jax.random.PRNGKey(1), {"image": images})
  state = state.replace(params={**state.params, "log_scale": jnp.asarray(-1.3)})
  rng = jax.random.PRNGKey(2)
  mu, logvar = objective.encode(state, images)
  nll_fn = lambda z, x: objective.decoder_nll(state, z, x)
  ours = likelihood.elbo_per_example(rng, images, mu, logvar, nll_fn)
  loop = objective.eval_step(state, {"image": images}, rng)
  np.testing.assert_allclose(ours["elbo_nats"], loop["elbo_nats"], rtol=1e-5)
  # bits/dim of a density carry the 8-bit discretization term, as in training.
  summary = likelihood.summarize_bounds({"elbo_nats": np.asarray(ours["elbo_nats"])}, 784,
                                        objective.discretization_nats(784))
  np.testing.assert_allclose(summary["elbo_nats"]["bits_per_dim"],
                             float(jnp.mean(loop["bits_per_dim"])), rtol=1e-5)


def test_iwae_is_above_the_elbo_and_non_decreasing_in_k_on_fixed_batches(vae_setup):
  config, objective, state, _ = vae_setup
  ks = (1, 10, 100, 1000)
  per_example = likelihood.per_example_bounds(
      objective, state, data_lib.make_eval_batches(config.data), jax.random.PRNGKey(0),
      num_samples=ks, max_examples=64, max_decoder_batch=8192)
  assert per_example["elbo_nats"].shape == (64,) and per_example["label"].shape == (64,)
  means = [per_example["elbo_nats"].mean()] + [per_example[f"iwae_{k}_nats"].mean() for k in ks[1:]]
  assert all(b > a for a, b in zip(means, means[1:])), means
  # The gap is significant, not noise: the one-sample ELBO estimate is itself random,
  # so single images may exceed IWAE_1000, but the mean gap is many standard errors.
  gap = per_example["iwae_1000_nats"] - per_example["elbo_nats"]
  assert gap.mean() > 5 * gap.std(ddof=1) / math.sqrt(gap.size), gap
  summary = likelihood.summarize_bounds(per_example, 784)
  elbo = summary["elbo_nats"]
  assert elbo["negative_nats"] == pytest.approx(-elbo["nats"])
  assert elbo["bits_per_dim"] == pytest.approx(-elbo["nats"] / (784 * math.log(2)))
  assert elbo["nats_stderr"] == pytest.approx(
      np.std(per_example["elbo_nats"], ddof=1) / 8.0)


class _GanLikeObjective:
  """Stands in for a family with samples but no encoder or likelihood."""

  def sample(self, state, rng, num):
    return jnp.zeros((num, 28, 28, 1))


def test_likelihood_of_a_family_without_one_is_a_clear_error():
  with pytest.raises(likelihood.NoLikelihoodError, match=r"ELBO.*GANs define no likelihood"):
    likelihood.make_bounds_fn(_GanLikeObjective())
  config = load_config("mnist_vae", "smoke,model=mlp")
  config.objective.likelihood = "mse"
  config.train.curve_metrics = ("loss",)
  mse_vae = objectives.get_objective(config)
  with pytest.raises(likelihood.NoLikelihoodError, match=r"objective.likelihood='mse'"):
    likelihood.check_has_likelihood(mse_vae, "IWAE bound")
  assert anomaly.available_scores(mse_vae) == ("reconstruction_error",)
  assert anomaly.available_scores(_GanLikeObjective()) == ()


# ------------------------------------------------------------------ sample quality
def test_frechet_distance_matches_closed_forms():
  rng = np.random.default_rng(0)
  # Diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2.
  mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
  s1, s2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  assert sample_quality.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == \
      pytest.approx(expected, rel=1e-9)
  # Full covariances against scipy's matrix square root.
  a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
  c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
  reference = np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
  assert sample_quality.frechet_distance(np.zeros(6), c1, np.zeros(6), c2) == \
      pytest.approx(reference, rel=1e-6)


@pytest.fixture(scope="module")
def digit_features(data_dir):
  """mnist_5k pixels through a fixed random projection to 32 dims (a stand-in feature net)."""
  config = load_config("mnist_vae", "smoke")
  config.data.data_dir = data_dir
  config.data.batch_size = 500

  def load(split):
    batches = list(data_lib.make_eval_batches(config.data, split=split))
    return np.concatenate([b["image"][b["mask"] > 0] for b in batches]).reshape(-1, 784)

  projection = np.random.default_rng(0).normal(size=(784, 32)) / math.sqrt(784)
  test, train = load("test"), load("train")  # The whole (class-sorted) splits.
  noise = np.random.default_rng(1).uniform(size=test.shape)
  return test @ projection, train @ projection, noise @ projection


def test_fid_of_a_set_with_itself_is_zero_and_real_sets_are_far_closer_than_noise(digit_features):
  test, train, noise = digit_features
  assert abs(sample_quality.fid(test, test)) < 1e-6
  real_vs_real = sample_quality.fid(test, train)
  real_vs_noise = sample_quality.fid(test, noise)
  assert real_vs_real < 0.02 * real_vs_noise, (real_vs_real, real_vs_noise)  # ~0.06 vs ~7.4


def _gaussian_features(n, mean, cov, rng):
  return rng.multivariate_normal(mean, cov, size=n)


def _two_gaussians(dim=16, seed=0):
  """(mean, covariance) of a "real" and a "generated" Gaussian in `dim` dimensions."""
  rng = np.random.default_rng(seed)
  a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
  real = (np.zeros(dim), a @ a.T / dim + 0.1 * np.eye(dim))
  generated = (np.full(dim, 0.3), b @ b.T / dim + 0.1 * np.eye(dim))
  return real, generated


def test_fid_bootstrap_brackets_the_fid_records_the_counts_and_widens_with_fewer_samples():
  real, generated = _two_gaussians()
  rng = np.random.default_rng(1)
  widths = {}
  for n_gen, n_real in ((2000, 1000), (200, 100)):
    out = sample_quality.fid_bootstrap(_gaussian_features(n_gen, *generated, rng),
                                       _gaussian_features(n_real, *real, rng))
    low, high = out["fid_interval"]
    assert low < out["fid"] < high
    assert (out["num_generated"], out["num_real"], out["fid_resamples"]) == (n_gen, n_real, 100)
    widths[n_real] = high - low
  assert widths[100] > 2 * widths[1000], widths  # ~sqrt(10) wider with 10x fewer rows.


def test_fid_bootstrap_is_deterministic_given_its_seed():
  real, generated = _two_gaussians()
  rng = np.random.default_rng(1)
  a, b = _gaussian_features(300, *generated, rng), _gaussian_features(300, *real, rng)
  first = sample_quality.fid_bootstrap(a, b, num_resamples=30, seed=3)
  assert sample_quality.fid_bootstrap(a, b, num_resamples=30, seed=3) == first
  assert sample_quality.fid_bootstrap(a, b, num_resamples=30, seed=4)["fid_interval"] != \
      first["fid_interval"]
  plain = sample_quality.fid_bootstrap(a, b, num_resamples=0)
  assert plain["fid"] == first["fid"] == sample_quality.fid(a, b)
  assert "fid_interval" not in plain and plain["num_generated"] == 300
  with pytest.raises(ValueError, match=r"resamples >= 0 \(--fid_resamples\)"):
    sample_quality.fid_bootstrap(a, b, num_resamples=-1)


def test_fid_bootstrap_matches_fresh_draws_and_the_closed_form_bias():
  """Against independent draws from known Gaussians: their mean FID (at the same counts)
  lies in the interval, their spread matches the bootstrap's, and their excess over the
  closed-form FID of the distributions matches the bootstrap's bias estimate."""
  real, generated = _two_gaussians()
  rng = np.random.default_rng(2)
  n_gen, n_real = 600, 300
  out = sample_quality.fid_bootstrap(_gaussian_features(n_gen, *generated, rng),
                                     _gaussian_features(n_real, *real, rng))
  fresh = np.array([sample_quality.fid(_gaussian_features(n_gen, *generated, rng),
                                       _gaussian_features(n_real, *real, rng))
                    for _ in range(40)])
  exact = sample_quality.frechet_distance(*generated, *real)
  low, high = out["fid_interval"]
  assert low < fresh.mean() < high, (out, fresh.mean())
  assert 0.6 < out["fid_bootstrap_stderr"] / fresh.std(ddof=1) < 1.6
  assert out["fid_bootstrap_bias"] == pytest.approx(fresh.mean() - exact, rel=0.35)


def test_fid_bootstrap_of_one_distribution_is_near_the_fid_of_independent_draws():
  """Two draws of one distribution: the FID is all finite-sample bias. The interval holds
  the FID of fresh independent draws; the resamples' raw percentiles (before removing
  the bias that repeated rows add) would lie above it."""
  real, _ = _two_gaussians()
  rng = np.random.default_rng(3)
  out = sample_quality.fid_bootstrap(_gaussian_features(500, *real, rng),
                                     _gaussian_features(500, *real, rng))
  fresh = np.mean([sample_quality.fid(_gaussian_features(500, *real, rng),
                                      _gaussian_features(500, *real, rng)) for _ in range(20)])
  low, high = out["fid_interval"]
  assert low < fresh < high, (out, fresh)
  assert low + out["fid_bootstrap_bias"] > fresh  # Uncorrected, it would miss.


def test_fid_line_names_the_interval_and_the_sample_counts():
  result = {"fid": 12.34, "fid_interval": [11.81, 12.94], "fid_confidence": 0.95,
            "num_generated": 1000, "num_real": 500}
  assert sample_quality.describe_fid(result) == \
      "FID 12.3 (95% bootstrap interval 11.8-12.9; 1,000 generated vs 500 real)"
  del result["fid_interval"]
  assert sample_quality.describe_fid(result, decimals=2) == \
      "FID 12.34 (1,000 generated vs 500 real)"


def test_unbiased_kid_of_two_draws_from_one_distribution_averages_zero():
  rng = np.random.default_rng(0)
  unbiased, biased = [], []
  for _ in range(200):
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
    unbiased.append(sample_quality.mmd2_unbiased(x, y))
    kxx, kyy = sample_quality.polynomial_kernel(x, x), sample_quality.polynomial_kernel(y, y)
    biased.append(kxx.mean() + kyy.mean() - 2 * sample_quality.polynomial_kernel(x, y).mean())
  stderr = np.std(unbiased) / math.sqrt(len(unbiased))
  assert abs(np.mean(unbiased)) < 3 * stderr
  assert np.mean(biased) > 10 * stderr  # Keeping the diagonal would bias it upwards.
  shifted = sample_quality.mmd2_unbiased(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 1)
  assert shifted > 20 * stderr


def test_kid_reports_the_spread_over_subsets(digit_features):
  test, train, noise = digit_features
  mean, std = sample_quality.kid(test, train, num_subsets=20, subset_size=200)
  noise_mean, _ = sample_quality.kid(test, noise, num_subsets=20, subset_size=200)
  assert std > 0 and abs(mean) < noise_mean / 20


def test_precision_and_recall_see_quality_and_mode_collapse():
  rng = np.random.default_rng(0)
  two_modes = np.concatenate([rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 12])
  assert sample_quality.precision_recall(two_modes, two_modes) == (1.0, 1.0)
  one_mode = rng.normal(size=(300, 4))
  precision, recall = sample_quality.precision_recall(two_modes, one_mode)
  assert precision > 0.9 and 0.4 < recall < 0.6
  far = sample_quality.precision_recall(two_modes, rng.normal(size=(300, 4)) + 100)
  assert far == (0.0, 0.0)


def test_classifier_score_ranges_from_one_to_the_number_of_classes():
  assert sample_quality.classifier_score(np.full((100, 10), 0.1))[0] == pytest.approx(1.0)
  # Sorted by class, like mnist_5k's test split: splits must still mix the classes.
  confident = np.eye(10)[np.repeat(np.arange(10), 50)]
  score, std = sample_quality.classifier_score(confident, num_splits=5)
  assert 9.0 < score <= 10.0 and std < 0.5


# ------------------------------------------------------------------ anomaly
def test_auroc_of_a_perfect_a_reversed_and_a_random_score():
  rng = np.random.default_rng(0)
  labels = np.r_[np.zeros(300), np.ones(100)].astype(int)
  perfect = anomaly.roc_pr_auc(labels, labels + rng.uniform(0, 0.5, 400), num_bootstrap=200)
  assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0
  assert perfect["auroc_ci"] == pytest.approx([1.0, 1.0])
  assert anomaly.roc_pr_auc(labels, -labels, num_bootstrap=0)["auroc"] == 0.0
  random_score = rng.normal(size=400)
  result = anomaly.roc_pr_auc(labels, random_score, num_bootstrap=500)
  low, high = result["auroc_ci"]
  assert abs(result["auroc"] - 0.5) < 0.1 and low < 0.5 < high and high - low < 0.2
  assert result["auprc_chance"] == 0.25 and result["auprc_ci"][0] < 0.25 < result["auprc_ci"][1]
  # AUROC is the Mann-Whitney U statistic over (anomaly, normal) pairs.
  u = stats.mannwhitneyu(random_score[labels == 1], random_score[labels == 0]).statistic
  assert result["auroc"] == pytest.approx(u / (100 * 300))


def test_auroc_rejects_a_single_class_and_non_finite_scores():
  with pytest.raises(ValueError, match="normal and anomalous"):
    anomaly.roc_pr_auc(np.zeros(5), np.arange(5.0))
  with pytest.raises(ValueError, match="not finite"):
    anomaly.roc_pr_auc(np.r_[0, 1], np.r_[0.0, np.nan])


def test_one_class_table_and_csv_export(tmp_path):
  labels = np.array([0, 1, 2, 0, 1, 2])
  assert list(anomaly.one_class_targets(labels, 1)) == [1, 0, 1, 1, 0, 1]
  table = anomaly.one_class_table({
      0: {"negative_elbo": {"auroc": 0.9, "auprc": 0.5}},
      1: {"negative_elbo": {"auroc": 0.7, "auprc": 0.3}}})
  assert table["mean_auroc"]["negative_elbo"] == pytest.approx(0.8)
  path = anomaly.write_scores_csv(str(tmp_path / "out" / "scores.csv"), ["a.png", "b.png"],
                                  np.array([1.5, -2.0]))
  assert open(path).read().splitlines() == ["id,score", "a.png,1.5", "b.png,-2.0"]


def test_labels_file_errors_name_the_line(tmp_path):
  bad = tmp_path / "labels.csv"
  bad.write_text("id,label\na.png,1\nb.png,yes\n")
  with pytest.raises(ValueError, match=r"labels.csv:3: label must be 0 \(normal\) or 1"):
    anomaly.read_labels_file(str(bad))
  bad.write_text("file,anomalous\n")
  with pytest.raises(ValueError, match="needs a header 'id,label'"):
    anomaly.read_labels_file(str(bad))


# ------------------------------------------------------------------ latents
def test_active_units_per_dimension_kl_and_label_structure():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 50)
  mu = np.stack([labels * 3.0 + rng.normal(size=150) * 0.1,   # Active, informative.
                 rng.normal(size=150),                          # Active, noise.
                 rng.normal(size=150) * 0.01], axis=1)          # Collapsed.
  logvar = np.full_like(mu, -1.0)
  assert latents.active_units(mu)[0] == 2
  kl = latents.per_dimension_kl(mu, logvar)
  from jaxgen import losses
  assert kl.sum() == pytest.approx(float(jnp.mean(losses.gaussian_kl(mu, logvar))), rel=1e-5)
  result = latents.analyze(latents.EncodedSplit(mu=mu, logvar=logvar, labels=labels))
  assert result["knn_accuracy"] == 1.0 and result["silhouette"] > 0.3
  assert result["active_units"] == 2 and len(result["kl_per_dim_nats"]) == 3
