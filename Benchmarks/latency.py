#!/usr/bin/env python3
"""The latency side of `swift run -c release latency`: PyTorch (and onnxruntime, for RNNKit's
exported models) running the same cases at batch 1 on one thread, each call timed on its own.

Reads a JSON request on stdin: {"calls": N, "torch": true, "onnx": [{"name", "path", "steps"}]}
(the files RNNKitONNX exported, with their initial states as inputs, fed zeros). Writes one JSON object a line: {"engine", "name",
"median_us", "p99_us", "calls", "version"}. PyTorch's cases mirror the Swift ones: LSTMCell /
GRUCell / RNNCell + Linear for one step (the state carried from call to call, as a stream does),
nn.LSTM / nn.GRU / nn.RNN (+ Linear) over a 28-step piece from the carried state, all under
torch.inference_mode with one intra-op thread.
"""
import json
import sys
import time


def timed(call, calls):
    for _ in range(max(200, calls // 20)):
        call()
    times = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        call()
        times.append(clock() - start)
    times.sort()
    return times[len(times) // 2] / 1000, times[int(0.99 * (len(times) - 1))] / 1000


def torch_cases(calls):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = []
    with torch.inference_mode():
        for label, cell_type, layer_type, units, head in [
            ("LSTM(128)", torch.nn.LSTMCell, torch.nn.LSTM, 128, None),
            ("GRU(128)", torch.nn.GRUCell, torch.nn.GRU, 128, None),
            ("Model A", torch.nn.RNNCell, torch.nn.RNN, 10, 10),
        ]:
            cell = cell_type(28, units)
            layer = layer_type(28, units, batch_first=True)
            linear = torch.nn.Linear(units, head) if head else None
            x1 = torch.rand(1, 28) - 0.5
            x28 = torch.rand(1, 28, 28) - 0.5
            lstm = cell_type is torch.nn.LSTMCell
            state = [torch.zeros(1, units), torch.zeros(1, units)]
            sequence_state = [torch.zeros(1, 1, units), torch.zeros(1, 1, units)]

            def step():
                if lstm:
                    state[0], state[1] = cell(x1, (state[0], state[1]))
                    out = state[0]
                else:
                    state[0] = cell(x1, state[0])
                    out = state[0]
                if linear is not None:
                    out = torch.softmax(linear(out), dim=-1)
                return out

            def piece():
                if lstm:
                    out, (h, c) = layer(x28, (sequence_state[0], sequence_state[1]))
                    sequence_state[0], sequence_state[1] = h, c
                else:
                    out, h = layer(x28, sequence_state[0])
                    sequence_state[0] = h
                last = out[:, -1]
                if linear is not None:
                    last = torch.softmax(linear(last), dim=-1)
                return last

            for name, call in [(f"{label}, one step", step), (f"{label}, 28 steps", piece)]:
                median, p99 = timed(call, calls)
                results.append({"engine": "pytorch", "name": name, "median_us": median, "p99_us": p99, "calls": calls,
                                "version": torch.__version__})
    return results


def onnx_cases(models, calls):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    results = []
    for model in models:
        session = ort.InferenceSession(model["path"], options, providers=["CPUExecutionProvider"])
        steps = int(model["steps"])
        feeds = {}
        # "batch" is 1 and "steps" the case's; the input is the Swift side's values, the states zeros.
        for item in session.get_inputs():
            shape = [1 if d == "batch" else steps if d == "steps" else int(d) for d in item.shape]
            if item.name == "input":
                values = (np.arange(int(np.prod(shape))) % 13) / 13 - 0.5
                feeds[item.name] = values.astype(np.float32).reshape(shape)
            elif item.name == "lengths":
                feeds[item.name] = np.full(shape, steps, dtype=np.int32)
            else:
                feeds[item.name] = np.zeros(shape, dtype=np.float32)
        run = lambda: session.run(None, feeds)
        median, p99 = timed(run, calls)
        results.append({"engine": "onnxruntime", "name": model["name"], "median_us": median, "p99_us": p99, "calls": calls,
                        "version": ort.__version__})
    return results


def main():
    request = json.load(sys.stdin)
    calls = int(request.get("calls", 20000))
    out = []
    if request.get("torch"):
        try:
            out += torch_cases(calls)
        except ImportError as error:
            print(json.dumps({"skipped": "pytorch", "reason": str(error)}))
    if request.get("onnx"):
        try:
            out += onnx_cases(request["onnx"], calls)
        except ImportError as error:
            print(json.dumps({"skipped": "onnxruntime", "reason": str(error)}))
    for line in out:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
