#!/usr/bin/env python3
"""PyTorch's CPU training throughput for the workloads RNNKit's benchmarks time.

Called by `swift run -c release benchmarks` (it skips this with a line saying so when no
python3 with torch can be imported). Reads a JSON list of workloads on stdin:
  [{"name": "H128 LSTM", "cell": "LSTM", "batch": 128, "steps": 28, "inputs": 28,
    "units": [128], "classes": 10}, ...]
and writes one JSON object per workload on stdout:
  {"name": ..., "samples_per_second": ..., "threads": ..., "step_seconds": ...}

The model is the same as RNNKit's: recurrent layers (nn.RNN with tanh, nn.LSTM, nn.GRU;
several stack, all returning sequences but the last, whose last state feeds) and a Linear
head, softmax cross-entropy (nn.CrossEntropyLoss), Adam with Keras's defaults (lr 1e-3,
betas 0.9/0.999, eps 1e-7). One training step = forward, loss, backward, Adam step on a
fixed random batch. Reported: the median step time, taking the better of 1 and 2 intra-op
threads (both are measured; RNNKit uses 2 cores).
"""
import json
import statistics
import sys
import time

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, cell, inputs, units, classes):
        super().__init__()
        kind = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[cell]
        layers, width = [], inputs
        for h in units:
            layers.append(kind(width, h, batch_first=True))
            width = h
        self.recurrent = nn.ModuleList(layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for layer in self.recurrent:
            x, _ = layer(x)
        return self.head(x[:, -1, :])


def step_seconds(workload, threads, budget):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Model(workload["cell"], workload["inputs"], workload["units"], workload["classes"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(workload["batch"], workload["steps"], workload["inputs"])
    y = torch.randint(0, workload["classes"], (workload["batch"],))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    probe = time.perf_counter()
    step()
    once = time.perf_counter() - probe
    per_sample = max(1, int(0.02 / max(once, 1e-9)))  # each timed sample lasts at least 20 ms
    times, started = [], time.perf_counter()
    while len(times) < 9 and time.perf_counter() - started < budget:
        start = time.perf_counter()
        for _ in range(per_sample):
            step()
        times.append((time.perf_counter() - start) / per_sample)
    return statistics.median(times) if times else once


def main():
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    workloads = json.load(sys.stdin)
    for workload in workloads:
        timings = {threads: step_seconds(workload, threads, budget) for threads in (1, 2)}
        threads = min(timings, key=timings.get)
        print(json.dumps({
            "name": workload["name"],
            "threads": threads,
            "step_seconds": timings[threads],
            "samples_per_second": workload["batch"] / timings[threads],
            "torch": torch.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
