#!/usr/bin/env python3
"""Chooses the forecast example's hyper-parameters without its test months (docs/examples/forecast.md).

Each setting of the grid runs Examples/forecast on two inner splits of the training months only:
the file cut to its first TRAIN rows (120 for the airline series, whose last 24 are the test),
then forecasting the last 24 of those from the months before them, and the same cut 24 months
earlier. Each split runs seeds 0-2; a setting scores the mean RMSE of its six runs, and the table
is printed best first. The test months are never read.

    swift build -c release --product forecast
    scripts/forecast-validation.py ../shared/datasets/airline/Airline.csv [--train 120]
"""
import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("csv")
parser.add_argument("--train", type=int, default=120, help="the rows before the test months (default 120)")
parser.add_argument("--binary", default=".build/release/forecast")
args = parser.parse_args()

with open(args.csv) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
header, rows = lines[0], lines[1:]
if args.train > len(rows):
    sys.exit(f"{args.csv} has {len(rows)} rows, fewer than --train {args.train}")

folder = tempfile.mkdtemp(prefix="forecast-validation-")
splits = []
for end in (args.train, args.train - 24):
    path = os.path.join(folder, f"first-{end}.csv")
    with open(path, "w") as f:
        f.write("\n".join([header] + rows[:end]) + "\n")
    splits.append(path)

grid = {
    "window": [12, 18, 24],
    "units": [16, 32],
    "epochs": [100, 200],
    "learning-rate": [0.003, 0.01],
    "ensemble": [1, 5],
    "recursive": [False, True],
}


def flag(name, value):
    if isinstance(value, bool):
        return [f"--{name}"] if value else []
    return [f"--{name}={value}"]


def flags_of(setting):
    return [f for k, v in setting.items() for f in flag(k, v)]


results = []
for values in itertools.product(*grid.values()):
    setting = dict(zip(grid, values))
    flags = flags_of(setting)
    scores = []
    for path in splits:
        for seed in (0, 1, 2):
            out = subprocess.run([args.binary, "--csv", path, "--holdout", "24", "--seed", str(seed)] + flags,
                                 capture_output=True, text=True, check=True).stdout
            scores.append(float(out.strip().splitlines()[-1].removeprefix("RMSE: ")))
    results.append((statistics.mean(scores), max(scores), setting, scores))
    print(f"{statistics.mean(scores):7.2f} {max(scores):7.2f}  {' '.join(flags)}", file=sys.stderr, flush=True)

print("mean    worst   per run (first split seeds 0-2, second split seeds 0-2)  setting")
for mean, worst, setting, scores in sorted(results, key=lambda r: r[0]):
    print(f"{mean:7.2f} {worst:7.2f}  {' '.join(f'{s:6.2f}' for s in scores)}  "
          + " ".join(flags_of(setting)))
