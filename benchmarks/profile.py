"""Where a jaxgen train step's time goes: XLA ops by time, FLOPs and % of the matmul peak.

usage: taskset -c 1 python -m benchmarks.profile NAME --cpu-devices 1 [--top 12]
       python -m benchmarks.profile NAME [--cpu-devices N] [--min-seconds S] [--json PATH]

Runs `benchmarks.jax_worker NAME --trace-dir DIR` (the same compiled step the benchmark
times; the trace covers 3 steps after the timing) and reads back its Perfetto trace and
the step's HLO. Each traced event is one XLA op (a thunk: a convolution, a dot, a fusion
of elementwise work, a copy, an all-reduce) on one device thread, from its launch to its
"end" event. Pinned to one core (taskset, one device) the ops run one after another and
the compute ops' spans add up to about the step (ResNet VAE: 2.27 of 2.50 s; DCGAN's
convolutions 7.8 of 8.7 s). Spans can still overlap: XLA runs independent ops side by
side on several threads, and a parameter copy launched early can record its end late
(two of DCGAN's copies show 4 s), so the total can exceed the step; read such rows as
waiting, not work. The same holds for conditionals (`layers._materialized`'s copies of
weight-gradient operands: the ResNet VAE's 78 spans add up to several seconds, in a step
whose CPU time fell); an op inside a conditional's branch is counted only in its
conditional. Prints, per op kind and for the slowest single ops: milliseconds per
step (per device: the devices run side by side), the share, and for convolutions and dots the machine's GFLOP/s over them (all
devices) and its % of the float32 matmul peak measured in the same process. Convolutions
are split by role: plain, lhs-dilated (a transposed conv's forward or a strided conv's
input gradient) and rhs-dilated (a strided conv's weight gradient).

FLOPs per op are 2 x output elements x the window's multiply-adds per output, counting
only the window taps that land on real (not dilation-inserted) input pixels, as XLA's
cost analysis does, so a lhs-dilated conv is charged for its useful work only.
"""

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import subprocess
import sys
import tempfile

from benchmarks import specs

# An instruction's name, dtype and dims (a tuple-shaped one's first element).
_SHAPE = re.compile(r"^(?:ROOT )?%([\w.\-]+) = \(?(\w+)\[([\d,]*)\]")
_OPCODE = re.compile(r"\]\S* (\w[\w\-]*)\(")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_BRANCHES = re.compile(r"(?:branch_computations=\{([^}]*)\}|_computation=%([\w.\-]+))")
# The kind of a conditional: in a train step, `layers._materialized`'s copy of a
# weight gradient's operand.
CONDITIONAL = "conditional (materialized operand copy)"
_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")


def _dims(text: str) -> list[int]:
  return [int(d) for d in text.split(",") if d]


def parse_hlo(text: str) -> tuple[dict, dict]:
  """The module's instructions and computations.

  Returns:
    ({name: {"shape": [...], "opcode": str, "line": str, "computation": str}},
     {computation name: [instruction names]}).
  """
  instructions, computations, current = {}, collections.defaultdict(list), None
  for raw in text.splitlines():
    line = raw.strip()
    header = _COMPUTATION.match(line)
    if header and "=" not in line.split("(")[0]:
      current = header.group(1)
      continue
    shape = _SHAPE.match(line)
    if not shape:
      continue
    instructions[shape.group(1)] = {"shape": _dims(shape.group(3)), "dtype": shape.group(2),
                                    "opcode": _opcode(line),
                                    "line": line, "computation": current}
    computations[current].append(shape.group(1))
  return instructions, dict(computations)


def _opcode(line: str) -> str:
  match = _OPCODE.search(line)
  return match.group(1) if match else "?"


def _operands(line: str) -> list[str]:
  inside = line.split("(", 1)[1] if "(" in line else ""
  return re.findall(r"%([\w.\-]+)", inside.split(")", 1)[0])


def _window(line: str, key: str, rank: int, default: int) -> list[int]:
  match = re.search(rf"\b{key}=([\dx_]+)", line)
  if not match:
    return [default] * rank
  return [int(v) for v in match.group(1).split("x")]


def _taps_on_data(size: int, kernel: int, lhs_dilation: int, pad_low: int, out: int,
                  stride: int, rhs_dilation: int) -> int:
  """Window taps over all outputs of one spatial dim that hit a real input pixel."""
  dilated = (size - 1) * lhs_dilation + 1
  taps = 0
  for o in range(out):
    for k in range(kernel):
      position = o * stride + k * rhs_dilation - pad_low
      if 0 <= position < dilated and position % lhs_dilation == 0:
        taps += 1
  return taps


def conv_flops(line: str, instructions: dict) -> float | None:
  """FLOPs of one HLO convolution (useful multiply-adds x 2), None if unparsable."""
  operands = _operands(line)
  labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", line)
  out_shape = _SHAPE.match(line)
  if len(operands) != 2 or not labels or not out_shape or any(
      o not in instructions for o in operands):
    return None
  lhs, rhs = (instructions[o]["shape"] for o in operands)
  out = _dims(out_shape.group(3))
  lhs_labels, rhs_labels, out_labels = labels.groups()
  spatial = [c for c in lhs_labels if c.isdigit()]
  rank = len(spatial)
  size = _window(line, "size", rank, 1)
  stride = _window(line, "stride", rank, 1)
  lhs_dilate = _window(line, "lhs_dilate", rank, 1)
  rhs_dilate = _window(line, "rhs_dilate", rank, 1)
  pad = re.search(r"\bpad=([\d_x\-]+)", line)
  pads = [int(p.split("_")[0]) for p in pad.group(1).split("x")] if pad else [0] * rank
  taps = 1
  for d, digit in enumerate(spatial):
    taps *= _taps_on_data(lhs[lhs_labels.index(digit)], size[d], lhs_dilate[d], pads[d],
                          out[out_labels.index(digit)], stride[d], rhs_dilate[d])
  batch = out[out_labels.index("b")]
  out_features = out[out_labels.index("f")]
  # Grouped convs do not occur in jaxgen's models; the kernel's `i` is per group anyway.
  in_features = rhs[rhs_labels.index("i")]
  return 2.0 * batch * out_features * in_features * taps


def dot_flops(line: str, instructions: dict) -> float | None:
  """FLOPs of one HLO dot: 2 x output elements x contracted size."""
  operands = _operands(line)
  contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
  out_shape = _SHAPE.match(line)
  if not operands or operands[0] not in instructions or not contracting or not out_shape:
    return None
  lhs = instructions[operands[0]]["shape"]
  contracted = math.prod(lhs[int(d)] for d in _dims(contracting.group(1)))
  return 2.0 * math.prod(_dims(out_shape.group(3))) * contracted


def classify(name: str, instructions: dict, computations: dict) -> tuple[str, float | None]:
  """(kind, FLOPs) of one top-level op; a fusion is named by the conv or dot it holds."""
  info = instructions.get(name)
  if info is None:
    return "other", None
  lines = [info["line"]]
  if info["opcode"] == "fusion":
    called = _CALLS.search(info["line"])
    lines = [instructions[n]["line"] for n in computations.get(called.group(1), [])
             ] if called else lines
  opcodes = [_opcode(line) for line in lines]
  for line, opcode in zip(lines, opcodes):
    if opcode == "convolution":
      role = ("conv, lhs-dilated (transposed fwd / input grad)" if "lhs_dilate" in line
              else "conv, rhs-dilated (weight grad)" if "rhs_dilate" in line else "conv")
      return role, conv_flops(line, instructions)
    if opcode == "dot":
      return "dot", dot_flops(line, instructions)
  opcode = info["opcode"]
  if opcode == "fusion":
    if "reduce" in opcodes:
      return "fusion with a reduction (BatchNorm, sums)", None
    return "elementwise fusion", None
  if opcode in ("copy", "transpose"):
    return "copy / transpose", None
  if opcode.startswith("all-reduce"):
    return "all-reduce", None
  if opcode == "conditional":
    return CONDITIONAL, None
  return opcode, None


def branch_computations(instructions: dict) -> set[str]:
  """Names of the computations that conditionals call (their ops run inside them)."""
  names = set()
  for info in instructions.values():
    if info["opcode"] == "conditional":
      for listed, single in _BRANCHES.findall(info["line"]):
        names.update(n.strip().lstrip("%") for n in listed.split(",") if n.strip())
        if single:
          names.add(single)
  return names


def operand_dtypes(instructions: dict) -> collections.Counter:
  """How many convolutions and dots take operands of each dtype: bfloat16 ones that XLA
  upcast to float32 show as f32."""
  counts = collections.Counter()
  for info in instructions.values():
    if info["opcode"] in ("convolution", "dot"):
      operands = _operands(info["line"])
      dtype = instructions[operands[0]]["dtype"] if operands and operands[0] in instructions \
          else "?"
      counts[f"{info['opcode']} {dtype}"] += 1
  return counts


def op_times(trace_path: str, module: str = "jit_step") -> tuple[dict, int]:
  """{hlo op: total microseconds} over the trace's ops of `module`, and the devices seen.

  An op's event covers only its launch when its work runs on the intra-op thread pool;
  the matching "end: <op>" event on the same thread marks when it finished, so an op
  lasts from its event's start to the end of that event.
  """
  with gzip.open(trace_path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  events = sorted((e for e in events if e.get("ph") == "X"), key=lambda e: e["ts"])
  totals, devices, open_ops = collections.Counter(), set(), {}
  for event in events:
    args = event.get("args") or {}
    if args.get("hlo_module") == module and "hlo_op" in args:
      open_ops[(event["tid"], event["name"])] = event
      devices.add(args.get("device_ordinal"))
    elif event["name"].startswith("end: "):
      start = open_ops.pop((event["tid"], event["name"][len("end: "):]), None)
      if start is not None:
        totals[start["args"]["hlo_op"]] += event["ts"] + event.get("dur", 0.0) - start["ts"]
  for start in open_ops.values():  # No end event: the op ran inside its own event.
    totals[start["args"]["hlo_op"]] += start.get("dur", 0.0)
  return dict(totals), max(len(devices), 1)


def summarize(times: dict, num_devices: int, steps: int, instructions: dict,
              computations: dict, peak_gflops: float | None,
              step_ms: float | None = None) -> dict:
  """Per-kind and per-op rows: ms per step, share of all spans, GFLOP/s and % of peak.

  `step_ms`, the measured step time, is recorded beside the spans' total: spans of ops
  that XLA ran side by side overlap, so their total can exceed it.
  """

  def row(microseconds, flops):
    ms = microseconds / 1e3 / steps / num_devices
    # `flops` are one device's; the devices run the op side by side, so the machine's
    # rate over the op is all devices' FLOPs over one device's time.
    gflops = flops * num_devices / (ms / 1e3) / 1e9 if flops and ms else None
    return {"ms_per_step": ms, "gflop_per_step": flops and flops / 1e9, "gflops_per_s": gflops,
            "pct_of_peak": 100 * gflops / peak_gflops if gflops and peak_gflops else None}
  # An op inside a conditional's branch is counted once, in its conditional's span.
  inside = branch_computations(instructions)
  times = {name: us for name, us in times.items()
           if instructions.get(name, {}).get("computation") not in inside}
  traced_ms = sum(times.values()) / 1e3 / steps / num_devices
  total = sum(times.values())
  kinds, ops = collections.defaultdict(lambda: [0.0, 0.0]), []
  for name, microseconds in times.items():
    kind, flops = classify(name, instructions, computations)
    kinds[kind][0] += microseconds
    kinds[kind][1] += flops or 0.0
    ops.append({"op": name, "kind": kind, "share": microseconds / total,
                **row(microseconds, flops)})
  kind_rows = [{"kind": kind, "share": us / total, **row(us, flops or None)}
               for kind, (us, flops) in kinds.items()]
  return {"traced_ms_per_step": traced_ms, "step_ms": step_ms, "num_devices": num_devices,
          "kinds": sorted(kind_rows, key=lambda r: -r["ms_per_step"]),
          "ops": sorted(ops, key=lambda r: -r["ms_per_step"])}


def format_profile(name: str, profile: dict, top: int) -> str:
  """The printed tables."""
  fmt = lambda v, spec: format(v, spec) if v is not None else "-"
  lines = [f"{name}: {profile['traced_ms_per_step']:.1f} ms of XLA op spans per step per "
           f"device ({profile['num_devices']} device(s)) in a {fmt(profile['step_ms'], '.1f')} "
           f"ms step",
           f"{'op kind':50s} {'ms/step':>8s} {'share':>6s} {'GFLOP':>7s} {'GFLOP/s':>8s} "
           f"{'% peak':>6s}"]
  for r in profile["kinds"]:
    lines.append(f"{r['kind'][:50]:50s} {r['ms_per_step']:8.2f} {100 * r['share']:5.1f}% "
                 f"{fmt(r['gflop_per_step'], '7.3f')} {fmt(r['gflops_per_s'], '8.1f')} "
                 f"{fmt(r['pct_of_peak'], '6.0f')}")
  lines += ["", f"slowest {top} ops:"]
  for r in profile["ops"][:top]:
    lines.append(f"{r['op'][:28]:28s} {r['kind'][:21]:21s} {r['ms_per_step']:8.2f} "
                 f"{100 * r['share']:5.1f}% {fmt(r['gflop_per_step'], '7.3f')} "
                 f"{fmt(r['gflops_per_s'], '8.1f')} {fmt(r['pct_of_peak'], '6.0f')}")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("name", choices=sorted(specs.SPECS))
  parser.add_argument("--cpu-devices", type=int, default=None)
  parser.add_argument("--min-seconds", type=float, default=2.0)
  parser.add_argument("--top", type=int, default=12)
  parser.add_argument("--json", default=None, help="also write the profile here")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as trace_dir:
    cmd = [sys.executable, "-m", "benchmarks.jax_worker", args.name, "--min-seconds",
           str(args.min_seconds), "--trace-dir", trace_dir, "--with-peak"]
    if args.cpu_devices is not None:
      cmd += ["--cpu-devices", str(args.cpu_devices)]
    out = subprocess.run(cmd, cwd=specs.REPO, capture_output=True, text=True)
    result = next((json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is None:
      sys.exit(f"benchmarks.jax_worker {args.name} failed:\n{out.stderr[-2000:]}")
    traces = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz"))
    with open(os.path.join(trace_dir, "step.hlo.txt")) as f:
      instructions, computations = parse_hlo(f.read())
    times, num_devices = op_times(traces[0])
  profile = summarize(times, num_devices, result["trace_steps"], instructions, computations,
                      result.get("peak_gflops_per_s"), 1e3 / result["steps_per_s"])
  profile["result"] = result
  profile["operand_dtypes"] = dict(operand_dtypes(instructions))
  print(f"{args.name}: {result['steps_per_s']:.2f} steps/s, {result['cpu_s_per_step']:.3f} CPU "
        f"s/step, {result['gflops_per_s']:.1f} GFLOP/s = "
        f"{100 * result['gflops_per_s'] / result['peak_gflops_per_s']:.0f}% of the "
        f"{result['peak_gflops_per_s']:.0f} GFLOP/s matmul peak; XLA_FLAGS "
        f"{result['xla_flags'] or '(none)'}; load {result['loadavg1']:.1f}")
  print(format_profile(args.name, profile, args.top))
  print("operands of the convolutions and dots: " + ", ".join(
      f"{kind} x{count}" for kind, count in sorted(profile["operand_dtypes"].items())))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(profile, f, indent=1)


if __name__ == "__main__":
  main()
