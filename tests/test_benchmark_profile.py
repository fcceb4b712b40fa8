"""benchmarks/profile.py (FLOPs per op, times from a trace) and the one-core columns of
benchmarks/run.py."""

import gzip
import json

import jax
import jax.numpy as jnp
import pytest

from benchmarks import profile
from benchmarks import run
from jaxgen.models import layers

_NHWC = ("NHWC", "HWIO", "NHWC")

# One op each: a strided conv, a transposed conv's forward (lhs-dilated), a strided conv's
# weight gradient (rhs-dilated) and a dense layer.
_PROGRAMS = {
    "strided conv": lambda x, k: layers._strided_conv(x, k, 2, 1),
    "transposed conv": lambda x, k: jax.lax.conv_transpose(
        x, k, (2, 2), ((2, 2), (2, 2)), dimension_numbers=_NHWC),
    "weight gradient": lambda x, k: jax.grad(
        lambda k: layers._strided_conv(x, k, 2, 1).sum())(k),
    "dense": lambda x, k: x.reshape(x.shape[0], -1) @ jnp.ones((x[0].size, 10)),
}


@pytest.mark.parametrize("program", sorted(_PROGRAMS))
@pytest.mark.parametrize("size", [13, 14])
def test_flops_per_op_match_xlas_cost_analysis(program, size):
  x = jnp.ones((4, size, size, 8))
  kernel = jnp.ones((4, 4, 8, 16))
  compiled = jax.jit(_PROGRAMS[program]).lower(x, kernel).compile()
  instructions, _ = profile.parse_hlo(compiled.as_text())
  ours = 0.0
  for info in instructions.values():
    if info["opcode"] == "convolution":
      ours += profile.conv_flops(info["line"], instructions)
    elif info["opcode"] == "dot":
      ours += profile.dot_flops(info["line"], instructions)
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  assert ours > 0
  assert ours == pytest.approx(analysis["flops"], rel=1e-6)


def test_an_op_lasts_until_its_end_event(tmp_path):
  # "conv" launches for 5 us and finishes 100 us after it started; "add" has no end event.
  events = [
      {"ph": "X", "tid": 1, "ts": 0.0, "dur": 5.0, "name": "conv",
       "args": {"hlo_module": "jit_step", "hlo_op": "conv", "device_ordinal": "0"}},
      {"ph": "X", "tid": 1, "ts": 99.0, "dur": 1.0, "name": "end: conv"},
      {"ph": "X", "tid": 1, "ts": 120.0, "dur": 7.0, "name": "add",
       "args": {"hlo_module": "jit_step", "hlo_op": "add", "device_ordinal": "0"}},
      {"ph": "X", "tid": 2, "ts": 0.0, "dur": 50.0, "name": "conv",
       "args": {"hlo_module": "jit_step", "hlo_op": "conv", "device_ordinal": "1"}},
      {"ph": "X", "tid": 2, "ts": 59.0, "dur": 1.0, "name": "end: conv"},
      {"ph": "X", "tid": 3, "ts": 0.0, "dur": 500.0, "name": "other module",
       "args": {"hlo_module": "jit_init", "hlo_op": "conv"}},
  ]
  path = tmp_path / "trace.json.gz"
  with gzip.open(path, "wt") as f:
    json.dump({"traceEvents": events}, f)
  times, devices = profile.op_times(str(path))
  assert times == {"conv": 100.0 + 60.0, "add": 7.0}
  assert devices == 2


def test_summary_divides_by_steps_and_devices_and_rates_against_the_peak():
  line = ("%conv = f32[2,4,4,8]{3,2,1,0} convolution(%x, %k), window={size=1x1}, "
          "dim_labels=b01f_01io->b01f")
  instructions = {
      "x": {"shape": [2, 4, 4, 8], "opcode": "parameter", "line": "", "computation": "e"},
      "k": {"shape": [1, 1, 8, 8], "opcode": "parameter", "line": "", "computation": "e"},
      "conv": {"shape": [2, 4, 4, 8], "opcode": "convolution", "line": line,
               "computation": "e"},
      "copy": {"shape": [8], "opcode": "copy", "line": "%copy = f32[8]{0} copy(%x)",
               "computation": "e"},
  }
  flops = 2.0 * 2 * 4 * 4 * 8 * 8
  # 2 devices x 3 steps: 60 us of conv in all is 10 us per step per device.
  summary = profile.summarize({"conv": 60.0, "copy": 60.0}, 2, 3, instructions, {}, 1.0)
  kinds = {row["kind"]: row for row in summary["kinds"]}
  assert kinds["conv"]["ms_per_step"] == pytest.approx(0.01)
  assert kinds["conv"]["share"] == pytest.approx(0.5)
  # Both devices' FLOPs in one device's 10 us.
  assert kinds["conv"]["gflops_per_s"] == pytest.approx(2 * flops / 1e-5 / 1e9)
  assert kinds["conv"]["pct_of_peak"] == pytest.approx(100 * kinds["conv"]["gflops_per_s"])
  assert kinds["copy / transpose"]["gflops_per_s"] is None
  assert summary["traced_ms_per_step"] == pytest.approx(0.02)


def test_ops_inside_a_conditional_count_only_in_the_conditional():
  hlo = """
%region_0.1 (p.1: (f32[8])) -> (f32[8]) {
  %p.1 = (f32[8]{0}) parameter(0)
  %get-tuple-element.1 = f32[8]{0} get-tuple-element(%p.1), index=0
  %copy.7 = f32[8]{0} copy(%get-tuple-element.1)
  ROOT %tuple.1 = (f32[8]{0}) tuple(%copy.7)
}

ENTRY %main.9 (x: f32[8], p: pred[]) -> f32[8] {
  %x = f32[8]{0} parameter(0)
  %p = pred[] parameter(1)
  %tuple.2 = (f32[8]{0}) tuple(%x)
  %cond.1.clone = (f32[8]{0}) conditional(%p, %tuple.2, %tuple.2), branch_computations={%region_0.1, %region_1.2}
  %get-tuple-element.2 = f32[8]{0} get-tuple-element(%cond.1.clone), index=0
  ROOT %copy.8 = f32[8]{0} copy(%get-tuple-element.2)
}
"""
  instructions, computations = profile.parse_hlo(hlo)
  assert instructions["cond.1.clone"]["opcode"] == "conditional"
  assert profile.branch_computations(instructions) == {"region_0.1", "region_1.2"}
  summary = profile.summarize({"cond.1.clone": 30.0, "copy.7": 30.0, "copy.8": 10.0}, 1, 1,
                              instructions, computations, 1.0)
  kinds = {row["kind"]: row["ms_per_step"] for row in summary["kinds"]}
  assert kinds == pytest.approx({profile.CONDITIONAL: 0.03, "copy / transpose": 0.01})
  assert summary["traced_ms_per_step"] == pytest.approx(0.04)


def _pinned(framework, cpu_s_per_step, gflops_per_s=None):
  return {"framework": framework, "steps_per_s": 1 / cpu_s_per_step, "num_params": 7,
          "cpu_s_per_step": cpu_s_per_step, "gflops_per_s": gflops_per_s,
          "peak_rss_mb": 500.0, "loadavg1": 1.0, "compile_s": 1.0}


def test_the_one_core_columns_compare_cpu_seconds_per_step():
  runs = {"conv_vae_a": {
      "jax": [_pinned("jaxgen", 0.1)], "torch": [_pinned("torch", 0.1)],
      "jax_core": [_pinned("jaxgen", 0.20, 40.0), _pinned("jaxgen", 0.30, 30.0), None],
      "torch_core": [_pinned("torch", 0.30)]}}
  results = run.assemble(["conv_vae_a"], runs, [], {}, "test CPU", 2,
                         [{"gflops_per_s": 80.0}, {"gflops_per_s": 90.0}])
  entry = results["models"]["conv_vae_a"]
  assert entry["jaxgen_core_cpu_s_per_step"] == pytest.approx(0.25)
  assert entry["core_ratio"] == pytest.approx(0.30 / 0.25)  # > 1: jaxgen is faster.
  assert results["core_peak_gflops_per_s"] == pytest.approx(85.0)
  table = run.format_table(results)
  assert "0.250/0.300" in table and "1.20" in table
  assert f"{100 * 35 / 85:.0f}" in table.splitlines()[-1]  # One core's % of its peak.


def test_operand_dtypes_show_bfloat16_convolutions_computed_in_float32():
  x = jnp.ones((2, 8, 8, 4), jnp.bfloat16)
  kernel = jnp.ones((3, 3, 4, 4), jnp.bfloat16)
  compiled = jax.jit(lambda x, k: layers._strided_conv(x, k, 1, 1)).lower(x, kernel).compile()
  instructions, _ = profile.parse_hlo(compiled.as_text())
  counts = profile.operand_dtypes(instructions)
  assert sum(counts.values()) == 1
  # Either XLA kept the conv in bfloat16 or it converted the operands: the count says which.
  (kind,) = counts
  assert kind in ("convolution bf16", "convolution f32")
  converted = any(i["opcode"] == "convert" or "convert" in i["line"].split("=")[0]
                  for i in instructions.values())
  assert (kind == "convolution f32") == converted
