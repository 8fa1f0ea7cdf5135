"""Checks the ONNX files RNNKit wrote (Tests/RNNKitONNXTests/ONNXExportTests.swift).

Usage: onnx_check.py FOLDER TOLERANCE

FOLDER holds the .onnx files and cases.json, a list of cases: name, file, x and x_shape (the
batch-major input), expected and expected_shape (RNNKit's Float predict), and optionally lengths
and initial_states (graph input name -> [batch, units] values). For each case: onnx.checker's full
check (with shape inference); onnxruntime on the whole batch and on its first 3 samples (the batch
dimension is dynamic), each within TOLERANCE of RNNKit; and, with a dynamic time dimension, a run
on fewer steps. Prints "ok NAME: max |onnxruntime - RNNKit| = D" per case; exits 1 if any fails.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def run(session, case, batch, steps=None):
    x = np.asarray(case["x"], dtype=np.float32).reshape(case["x_shape"])[:batch]
    if steps is not None:
        x = x[:, :steps]
    feeds = {"input": x}
    if "lengths" in case:
        lengths = np.asarray(case["lengths"], dtype=np.int32)[:batch]
        feeds["lengths"] = np.minimum(lengths, x.shape[1]) if steps is not None else lengths
    for name, values in case.get("initial_states", {}).items():
        feeds[name] = np.asarray(values, dtype=np.float32).reshape(case["x_shape"][0], -1)[:batch]
    return session.run(["output"], feeds)[0]


def check(folder, case, tolerance):
    path = os.path.join(folder, case["file"])
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if dims[0] != "batch":
        raise AssertionError(f"the batch dimension is {dims[0]!r}, not dynamic")
    if case["dynamic_steps"] and len(dims) == 3 and dims[1] != "steps":
        raise AssertionError(f"the time dimension is {dims[1]!r}, not dynamic")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    expected = np.asarray(case["expected"], dtype=np.float64).reshape(case["expected_shape"])
    got = run(session, case, len(expected))
    if got.shape != expected.shape:
        raise AssertionError(f"onnxruntime's output is {got.shape}, RNNKit's {expected.shape}")
    difference = float(np.max(np.abs(got.astype(np.float64) - expected)))
    small = run(session, case, 3)
    difference3 = float(np.max(np.abs(small.astype(np.float64) - expected[:3])))
    if len(dims) == 3 and case["dynamic_steps"] and case["x_shape"][1] > 2:
        shorter = run(session, case, len(expected), steps=case["x_shape"][1] - 2)
        if shorter.shape[0] != len(expected) or not np.all(np.isfinite(shorter)):
            raise AssertionError(f"a run on fewer steps gave {shorter.shape}")
    worst = max(difference, difference3)
    if not worst <= tolerance:
        raise AssertionError(f"max |onnxruntime - RNNKit| = {worst:.3g} > {tolerance:g}")
    return difference, difference3, opset


def main():
    folder, tolerance = sys.argv[1], float(sys.argv[2])
    with open(os.path.join(folder, "cases.json")) as f:
        cases = json.load(f)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    failures = 0
    for case in cases:
        try:
            difference, difference3, opset = check(folder, case, tolerance)
            note = f" ({case['note']})" if case.get("note") else ""
            print(f"ok {case['name']}: max |onnxruntime - RNNKit| = {difference:.2e} (batch of 3: {difference3:.2e}), opset {opset}{note}")
        except Exception as error:  # report every case, then fail
            failures += 1
            print(f"FAILED {case['name']}: {type(error).__name__}: {error}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
