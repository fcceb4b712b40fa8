"""The benchmark harness: same networks in both frameworks, worker fields, table assembly."""

import json
import sys

import jax
import numpy as np
import pytest

from benchmarks import run
from benchmarks import specs
from jaxgen import objectives

REPO = specs.REPO


# Closed-form parameter counts of the benchmarked networks (weights + biases + BatchNorm
# scale and shift), layer by layer as jaxgen's docstrings describe them.
def _conv(c_in, c_out, k, bias=True):
  return c_in * c_out * k * k + (c_out if bias else 0)


def _dense(n_in, n_out, bias=True):
  return n_in * n_out + (n_out if bias else 0)


def _closed_form_params() -> dict[str, int]:
  mlp = (_dense(784, 512) + _dense(512, 256) + 2 * _dense(256, 2)
         + _dense(2, 256) + _dense(256, 512) + _dense(512, 784))
  conv_a = (_conv(1, 64, 4) + _conv(64, 128, 4) + 2 * _dense(128 * 7 * 7, 2)
            + _dense(2, 128 * 7 * 7) + _conv(128, 64, 4) + _conv(64, 1, 4))
  # B: A's encoder with 3x3 decoder kernels; C: 3x3 kernels throughout and latent 10.
  conv_b = (_conv(1, 64, 4) + _conv(64, 128, 4) + 2 * _dense(128 * 7 * 7, 2)
            + _dense(2, 128 * 7 * 7) + _conv(128, 64, 3) + _conv(64, 1, 3))
  conv_c = (_conv(1, 64, 3) + _conv(64, 128, 3) + 2 * _dense(128 * 7 * 7, 10)
            + _dense(10, 128 * 7 * 7) + _conv(128, 64, 3) + _conv(64, 1, 3))
  frey_pairs = list(zip((1, 16, 32, 64, 128), (16, 32, 64, 128, 256)))  # 28x20 -> 7x5.
  frey = (sum(_conv(a, b, 3) + _conv(b, a, 3) for a, b in frey_pairs)
          + 2 * _dense(256 * 7 * 5, 2) + _dense(2, 256 * 7 * 5))
  faces = (3, 32, 64, 128, 256)  # 64 -> 4 px; conv heads 4x4 to a 128-d latent.
  celeba = (sum(_conv(a, b, 4, bias=False) + 2 * b for a, b in zip(faces, faces[1:]))
            + 2 * _conv(256, 128, 4) + _conv(128, 256, 4, bias=False) + 2 * 256
            + sum(_conv(b, a, 4, bias=False) + 2 * a for a, b in zip(faces[1:-1], faces[2:]))
            + _conv(32, 3, 4))
  g_widths, d_widths = (1024, 512, 256, 128), (3, 128, 256, 512, 1024)
  generator = (_dense(100, 4 * 4 * 1024, bias=False) + 2 * 1024
               + sum(_conv(a, b, 4, bias=False) + 2 * b for a, b in zip(g_widths, g_widths[1:]))
               + _conv(128, 3, 4))
  discriminator = (_conv(3, 128, 4)
                   + sum(_conv(a, b, 4, bias=False) + 2 * b
                         for a, b in zip(d_widths[1:], d_widths[2:]))
                   + _conv(1024, 1, 4))
  # ResNet VAE at the benchmark's width w = 32: a block's two 3x3 convs and BNs, and a
  # 1x1 conv + BN projection where the width changes (which, here, is where the size
  # changes too).
  def block(c_in, c_out):
    projection = _conv(c_in, c_out, 1, bias=False) + 2 * c_out if c_in != c_out else 0
    return (_conv(c_in, c_out, 3, bias=False) + _conv(c_out, c_out, 3, bias=False)
            + 4 * c_out + projection)
  # Block input and output widths: the stem's w, then 2 blocks per stage (32 -> 4 px);
  # the decoder starts from the 8w-channel 4x4 map.
  w = 32
  encoder = (w, w, w, 2 * w, 2 * w, 4 * w, 4 * w, 8 * w, 8 * w)
  decoder = (8 * w, 8 * w, 8 * w, 4 * w, 4 * w, 2 * w, 2 * w, w, w)
  resnet = (_conv(3, w, 3, bias=False) + 2 * w
            + sum(block(a, b) for a, b in zip(encoder, encoder[1:]))
            + 2 * _dense(8 * w * 4 * 4, 128) + _dense(128, 8 * w * 4 * 4)
            + sum(block(a, b) for a, b in zip(decoder, decoder[1:]))
            + 2 * w + _conv(w, 3 * 2, 3))  # Logistic means and log-scales.
  counts = {"mlp_vae": mlp, "conv_vae_a": conv_a, "conv_vae_b": conv_b, "conv_vae_c": conv_c,
            "frey_vae": frey, "celeba_vae": celeba,
            "resnet_vae": resnet, "dcgan": generator + discriminator}
  # bfloat16 compute keeps the same float32 parameters.
  return {**counts, "conv_vae_a_bf16": conv_a, "dcgan_bf16": generator + discriminator}


CLOSED_FORM_PARAMS = _closed_form_params()


def _jaxgen_params(name: str) -> tuple[int, list[int]]:
  """(objective.num_params, sorted sizes of the trainable tensors), shapes only."""
  spec = specs.SPECS[name]
  objective = objectives.get_objective(specs.load_config(name))
  batch = {"image": np.zeros((spec.batch_size,) + spec.image_shape, np.float32),
           "label": np.zeros((spec.batch_size,), np.int32)}
  state = jax.eval_shape(objective.init_state, jax.random.PRNGKey(0), batch)
  trainable = state.params["model"] if hasattr(state, "params") else (state.g_params,
                                                                     state.d_params)
  sizes = sorted(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(trainable))
  return objective.num_params(state), sizes


@pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")
@pytest.mark.parametrize("name", list(specs.SPECS))
def test_jaxgen_param_counts_match_closed_form(name):
  count, sizes = _jaxgen_params(name)
  assert count == sum(sizes) == CLOSED_FORM_PARAMS[name]


@pytest.mark.filterwarnings("ignore:ConvTranspose kernel_size")
@pytest.mark.parametrize("name", list(specs.SPECS))
def test_torch_networks_are_jaxgen_networks(name):
  torch = pytest.importorskip("torch")
  from benchmarks import torch_worker
  torch.manual_seed(0)
  config = specs.load_config(name)
  modules, step, example = torch_worker.build(config, batch_size=2)
  count, sizes = _jaxgen_params(name)
  assert torch_worker.num_params(modules) == count
  # Tensor by tensor, not just in total: a layer moved between widths changes this.
  assert torch_worker.param_sizes(modules) == sizes
  before = [p.detach().clone() for m in modules for p in m.parameters()]
  loss = step()
  assert np.isfinite(loss.item())
  h, w, c = specs.SPECS[name].image_shape
  assert tuple(example.shape) == (2, c, h, w)
  # Every parameter is trained by the step (none is left out of the optimizer or graph).
  after = [p.detach() for m in modules for p in m.parameters()]
  assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_torch_discretized_logistic_loss_is_jaxgen_loss():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_worker
  from jaxgen import losses
  from jaxgen import value_range
  config = specs.load_config("resnet_vae")
  config.objective.beta = 0.5  # A beta that is not 1 must weigh the KL in both.
  data = value_range.of_data(config.data)
  rng = np.random.default_rng(0)
  b, h, w, c = 4, 6, 6, 3
  levels = rng.integers(0, 256, (b, h, w, c))
  levels[:, 0, 0], levels[:, 0, 1] = 0, 255  # The edge bins, open to -inf and +inf.
  images = data.from_uint8(levels).astype(np.float32)
  means = (images + rng.normal(0.0, 0.1, images.shape)).astype(np.float32)
  log_scales = rng.uniform(-8.0, 0.5, images.shape).astype(np.float32)  # Some below -7.
  mu = rng.normal(size=(b, 16)).astype(np.float32)
  logvar = rng.normal(0.0, 0.5, (b, 16)).astype(np.float32)
  # Both branches of the interior bins: the bin's mass, and density * width where the
  # mass underflows (narrow logistics far from the value).
  half_bin = 1 / 255
  inv_scale = np.exp(-np.maximum(log_scales.astype(np.float64), -7.0))
  sigmoid = lambda t: 1 / (1 + np.exp(-t))
  mass = (sigmoid(inv_scale * (images - means + half_bin))
          - sigmoid(inv_scale * (images - means - half_bin)))
  interior = (levels > 0) & (levels < 255)
  assert (interior & (mass < 1e-5)).any() and (interior & (mass > 1e-4)).any()

  expected_nll = np.asarray(losses.discretized_logistic_nll(means, log_scales, images,
                                                            data.low, data.width))
  expected = np.mean(expected_nll + 0.5 * np.asarray(losses.gaussian_kl(mu, logvar)))
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
  nll = torch_worker.discretized_logistic_nll(nchw(means), nchw(log_scales), nchw(images),
                                              data.low, data.width)
  np.testing.assert_allclose(nll.numpy(), expected_nll, rtol=1e-4)
  # The decoder's output as the step sees it: NCHW, the C means then the C log-scales.
  output = nchw(np.concatenate([means, log_scales], axis=-1))
  loss = torch_worker.vae_loss(config, output, nchw(images), torch.from_numpy(mu),
                               torch.from_numpy(logvar))
  assert loss.item() == pytest.approx(float(expected), rel=1e-4)


def test_torch_fixed_gaussian_loss_is_jaxgen_loss():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_worker
  from jaxgen import losses
  config = specs.load_config("frey_vae")  # Gaussian, sigma fixed at 0.1.
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 1, (3, 5, 4, 1)).astype(np.float32)
  means = (images + rng.normal(0, 0.2, images.shape)).astype(np.float32)
  mu, logvar = rng.normal(size=(2, 3, 2)).astype(np.float32)
  expected = np.mean(
      np.asarray(losses.gaussian_nll(means, images, config.objective.gaussian_log_scale))
      + np.asarray(losses.gaussian_kl(mu, logvar)))
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
  loss = torch_worker.vae_loss(config, nchw(means), nchw(images), torch.from_numpy(mu),
                               torch.from_numpy(logvar))
  assert loss.item() == pytest.approx(float(expected), rel=1e-5)


def test_torch_adam_clips_the_global_norm_first():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_worker
  config = specs.load_config("resnet_vae")
  config.optimizer.grad_clip_norm = 1.0
  config.optimizer.learning_rate = 0.1
  params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]
  optimizer = torch_worker._adam(params, config.optimizer)
  params[0].grad, params[1].grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
  optimizer.step()
  # Clipped to norm 1 over both tensors: (0.6, 0) and (0.8); Adam's first step then moves
  # every parameter with a nonzero gradient by about -lr.
  assert params[0].grad.tolist() == pytest.approx([0.6, 0.0])
  assert params[1].grad.tolist() == pytest.approx([0.8])
  assert params[0].tolist() == pytest.approx([-0.1, 0.0], abs=1e-6)
  config.optimizer.grad_clip_norm = None
  assert type(torch_worker._adam(params, config.optimizer)) is torch.optim.Adam


def test_torch_bfloat16_step_keeps_float32_parameters():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_worker
  config = specs.load_config("conv_vae_a")
  config.model.dtype = "bfloat16"
  modules, step, _ = torch_worker.build(config, batch_size=2)
  assert np.isfinite(step().item())
  assert all(p.dtype == torch.float32 for m in modules for p in m.parameters())


def test_torch_rejects_what_it_cannot_mirror():
  pytest.importorskip("torch")
  from benchmarks import torch_worker
  config = specs.load_config("mlp_vae")
  config.objective.likelihood = "laplace"
  with pytest.raises(ValueError, match="objective.likelihood='laplace'"):
    torch_worker.build(config, batch_size=2)
  config = specs.load_config("frey_vae")
  config.objective.learn_scale = True
  with pytest.raises(ValueError, match="learn_scale=True"):
    torch_worker.vae_loss(config, *[torch_worker.torch.zeros(2, 3)] * 4)
  config = specs.load_config("conv_vae_a")
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match="model.dtype='float16'"):
    torch_worker.build(config, batch_size=2)
  config = specs.load_config("dcgan")
  config.objective.auxiliary = "acgan"
  with pytest.raises(ValueError, match="unconditional non-saturating"):
    torch_worker.build(config, batch_size=2)


def test_load_config_checks_the_spec():
  with pytest.raises(ValueError, match="Unknown benchmark 'nope'"):
    specs.load_config("nope")
  assert specs.load_config("dcgan").data.batch_size == specs.SPECS["dcgan"].batch_size


def test_jax_worker_reports_every_field(monkeypatch, capsys):
  # In this process (jaxgen is imported already), through the worker's command line.
  from benchmarks import jax_worker
  monkeypatch.setattr(sys, "argv", ["jax_worker", "mlp_vae", "--min-seconds", "0.05"])
  jax_worker.main()
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("RESULT ")]
  assert len(lines) == 1
  result = json.loads(lines[0][len("RESULT "):])
  expected = {"task", "framework", "steps_per_s", "images_per_s", "cpu_s_per_step",
              "compile_s", "flops_per_step", "gflops_per_s", "num_params", "batch_size", "device",
              "num_devices", "xla_flags", "peak_rss_mb", "loadavg1"}
  assert expected <= set(result)
  assert result["task"] == "mlp_vae" and result["framework"] == "jaxgen"
  assert result["batch_size"] == 100
  assert result["num_params"] == CLOSED_FORM_PARAMS["mlp_vae"]
  assert result["steps_per_s"] > 0 and result["cpu_s_per_step"] > 0
  assert result["images_per_s"] == pytest.approx(100 * result["steps_per_s"])
  assert 0 < result["compile_s"] < 300
  # Forward matmuls 2 * B * sum(n_in * n_out); backward twice that, less the input
  # layer's unused input gradient; elementwise work and Adam add a few percent.
  widths = [(784, 512), (512, 256), (256, 2), (256, 2), (2, 256), (256, 512), (512, 784)]
  forward = 2 * 100 * sum(a * b for a, b in widths)
  matmuls = 3 * forward - 2 * 100 * 784 * 512
  assert matmuls <= result["flops_per_step"] <= 1.15 * matmuls
  assert result["gflops_per_s"] == pytest.approx(
      result["flops_per_step"] * result["steps_per_s"] / 1e9)
  assert 50 < result["peak_rss_mb"] < 64_000
  assert result["loadavg1"] >= 0


def _fake(framework, steps_per_s, num_params, load=1.0):
  result = {"framework": framework, "steps_per_s": steps_per_s, "num_params": num_params,
            "peak_rss_mb": 500.0, "loadavg1": load}
  if framework == "jaxgen":
    result.update(compile_s=2.0, gflops_per_s=40.0)
  return result


def test_assembly_without_torch():
  runs = {"mlp_vae": {"jax": [_fake("jaxgen", 100.0, 7), _fake("jaxgen", 120.0, 7), None],
                      "torch": []},
          "dcgan": {"jax": [None]}}
  results = run.assemble(["mlp_vae", "dcgan"], runs, [{"gflops_per_s": 80.0}, None],
                         {"mlp_vae": {"examples_per_s": 22_000.0}}, "test CPU", 2)
  entry = results["models"]["mlp_vae"]
  assert entry["jaxgen_steps_per_s"] == 110.0
  assert entry["torch_steps_per_s"] is None and entry["ratio"] is None
  assert entry["torch_num_params"] is None and entry["params_match"] is None
  assert entry["pipeline_over_step"] == pytest.approx(22_000 / (110 * 100))
  assert results["models"]["dcgan"]["jaxgen_steps_per_s"] is None
  assert results["peak_gflops_per_s"] == 80.0 and results["warnings"] == []
  table = run.format_table(results)
  assert "mlp_vae" in table and "dcgan" in table and "WARNING" not in table
  # results.json has nulls where there is no measurement.
  assert json.loads(json.dumps(results))["models"]["mlp_vae"]["ratio"] is None


def test_assembly_flags_a_parameter_mismatch():
  runs = {"conv_vae_a": {"jax": [_fake("jaxgen", 9.0, 308_357)],
                         "torch": [_fake("torch", 10.0, 308_000), _fake("torch", 12.0, 308_000)]}}
  results = run.assemble(["conv_vae_a"], runs, [], {}, "test CPU", 1)
  entry = results["models"]["conv_vae_a"]
  assert entry["ratio"] == pytest.approx(9.0 / 11.0)
  assert entry["params_match"] is False
  assert len(results["warnings"]) == 1 and "308,357" in results["warnings"][0]
  assert "WARNING: conv_vae_a" in run.format_table(results)


def test_main_without_torch(tmp_path, monkeypatch, capsys):
  calls = []

  def fake_measure(worker, task, min_seconds, xla_flags=None, extra_args=(), core=None):
    calls.append((worker, task))
    assert core is None  # No --per-core.
    assert not extra_args  # No --cpu-devices: each config's own count.
    assert xla_flags == ("--xla_cpu_use_thunk_runtime=true" if worker == "jax_worker" else None)
    if task == "matmul":
      return {"gflops_per_s": 100.0}
    if task.startswith("pipeline:"):
      return {"examples_per_s": 5_000.0}
    return _fake("jaxgen", 50.0, 1_068_820)

  real_find_spec = run.importlib.util.find_spec
  monkeypatch.setattr(run, "measure", fake_measure)
  monkeypatch.setattr(run.importlib.util, "find_spec",
                      lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
  out = tmp_path / "results.json"
  monkeypatch.setattr(sys, "argv", ["run", "--models", "mlp_vae", "--reps", "2", "--out",
                                    str(out), "--xla-flags=--xla_cpu_use_thunk_runtime=true"])
  run.main()
  assert "PyTorch is not installed" in capsys.readouterr().out
  assert not any(worker == "torch_worker" for worker, _ in calls)
  written = json.loads(out.read_text())
  assert written["xla_flags"] == "--xla_cpu_use_thunk_runtime=true"
  entry = written["models"]["mlp_vae"]
  assert entry["jaxgen_runs"] == [50.0, 50.0] and entry["torch_runs"] == []
  assert entry["ratio"] is None and entry["pipeline_over_step"] == 1.0
