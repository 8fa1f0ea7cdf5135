#!/usr/bin/env python3
"""Writes the generated part of docs/BENCHMARKS.md from `benchmarks --json` files, one per CPU.

    scripts/benchmarks-page.py docs/BENCHMARKS.md docs/benchmarks/*.json > NEW.md

It prints the page with everything between `<!-- benchmarks-page:begin -->` and
`<!-- benchmarks-page:end -->` replaced by the per-run tables of each file (the hand-written prose
around the markers is kept as it is). `make benchmarks-page` writes it; `make test` checks that the
page is what this script writes, as it does for docs/PERFORMANCE.md.
"""
import importlib.util
import json
import os
import sys

BEGIN, END = "<!-- benchmarks-page:begin -->", "<!-- benchmarks-page:end -->"

_spec = importlib.util.spec_from_file_location(
    "performance_page", os.path.join(os.path.dirname(os.path.abspath(__file__)), "performance-page.py"))
performance_page = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(performance_page)


def number(value, digits=1, suffix=""):
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def run_tables(name, run):
    m = run["machine"]
    out = [f"### {performance_page.cpu_title(m)}", "",
           f'`docs/benchmarks/{name}`: {run["build"]} build{", quick pass" if run["quick"] else ""}, '
           f'{run["workers"]} workers, {run["threads"]} OpenBLAS thread per call; OpenBLAS core '
           f'**{m["coreAfter"]}** ({m["outcome"]}), RNNKit\'s own kernels **{run.get("smallKernels", "?")}**; '
           f'PyTorch {run.get("pytorch") or "not measured"}.', ""]
    agreement = run.get("agreementMaxRelativeError") or {}
    if agreement:
        out += [f'Engine against the naive reference, largest relative difference: '
                f'{max(agreement.values()):.2e} (over {len(agreement)} configurations).']
    mallocs = run.get("mallocsPerTrainingStep") or {}
    if mallocs:
        out += ["malloc calls per training step: " + "; ".join(f"{k}: {v}" for k, v in sorted(mallocs.items())) + "."]
    out.append("")
    kernels = run.get("kernels") or []
    if kernels:
        naive = any(k.get("naiveSecondsPerBatch") is not None for k in kernels)
        head = "| configuration (B, T, D, H) | mode |" + (" naive ms/batch |" if naive else "") + \
               " BLAS ms/batch | OpenBLAS-only ms/batch | small-matrix gain |" + (" speedup over naive |" if naive else "") + \
               " GFLOP/s | % of FMA peak | % of sgemm rate | sgemm GFLOP/s beside | RNNKit samples/s | PyTorch samples/s |"
        out += ["Every workload, both paths (medians of repeated batches):", "", head,
                "|---|---|" + "---:|" * (head.count("|") - 3)]
        for k in kernels:
            blas, only = k["blasSecondsPerBatch"], k.get("openBLASOnlySecondsPerBatch")
            row = f'| {k["workload"]} | {k["mode"]} |'
            if naive:
                row += f' {number(k.get("naiveSecondsPerBatch") and 1000 * k["naiveSecondsPerBatch"], 3)} |'
            row += f' {1000 * blas:.4f} | {number(only and 1000 * only, 4)} | {number(only and only / blas, 2, "×")} |'
            if naive:
                row += f' {number(k.get("naiveSecondsPerBatch") and k["naiveSecondsPerBatch"] / blas, 1, "×")} |'
            row += (f' {k["gflops"]:.1f} | {number(k.get("percentOfFMAPeak"), 0, "%")} | {k["percentOfGEMMRate"]:.0f}% |'
                    f' {number(k.get("gemmRateBeside"), 0)} | {k["blasSamplesPerSecond"]:.0f} | {number(k.get("pytorchSamplesPerSecond"), 0)} |')
            out.append(row)
        out.append("")
    products = run.get("smallProducts") or []
    if products:
        rate = products[0].get("peakPerCoreGFLOPS")
        out += ["The notebook models' products one at a time, single-threaded (one worker's shard), in each path, "
                f"beside the machine's sgemm rate per core ({number(rate)} GFLOP/s in this run):", "",
                "| product | OpenBLAS GFLOP/s | small-matrix kernel GFLOP/s | kernel ÷ OpenBLAS | kernel, % of the per-core sgemm rate |",
                "|---|---:|---:|---:|---:|"]
        for p in products:
            peak = p.get("peakPerCoreGFLOPS")
            share = number(peak and 100 * p["smallKernelGFLOPS"] / peak, 0, "%")
            out.append(f'| {p["shape"]} | {p["openBLASGFLOPS"]:.1f} | {p["smallKernelGFLOPS"]:.1f} | '
                       f'{p["smallKernelGFLOPS"] / p["openBLASGFLOPS"]:.1f}× | {share} |')
        out.append("")
    ends = run.get("endToEnd") or []
    if ends:
        out += ["End to end, `fit` as `train-blas` runs it (MNIST-shaped images, shuffled, validation after each epoch), medians:", "",
                "| model | batch | training samples/s | OpenBLAS only | small-matrix gain | 1 worker | 2 workers ÷ 1 | "
                "inference samples/s | epochs × runs | PyTorch training samples/s (train step only) | RNNKit ÷ PyTorch |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in ends:
            rate, only, one = e["trainingSamplesPerSecond"], e.get("openBLASOnlyTrainingSamplesPerSecond"), e.get("oneWorkerTrainingSamplesPerSecond")
            torch = e.get("pytorchTrainingSamplesPerSecond")
            out.append(f'| {e["model"]} | {e["batch"]} | {rate:.0f} | {number(only, 0)} | {number(only and rate / only, 2, "×")} | '
                       f'{number(one, 0)} | {number(one and rate / one, 2, "×")} | {e["inferenceSamplesPerSecond"]:.0f} | '
                       f'{e["epochs"]} × {e["repeats"]} | {number(torch, 0)} | {number(torch and rate / torch, 1, "×")} |')
        out.append("")
        balance = [e for e in ends if e.get("coreBalance")]
        if balance:
            out += ["One shard trained on every worker's core at the same moment, against one worker's whole step:", "",
                    "| model | shard step (µs) | on the slower core (µs) | slower core ÷ faster, median | worst | intervals |",
                    "|---|---:|---:|---:|---:|---:|"]
            for e in balance:
                b = e["coreBalance"]
                out.append(f'| {e["model"]} | {b["medianShardMicroseconds"]:.1f} | {b["medianSlowestShardMicroseconds"]:.1f} | '
                           f'{b["medianSlowestOverFastest"]:.2f} | {b["worstSlowestOverFastest"]:.2f} | {b["intervals"]} |')
            out.append("")
    features = run.get("sequenceFeatures") or []
    if features:
        out += ["What the sequence features cost (training step per batch, timed alternately with the baseline):", "",
                "| configuration | baseline | ms/step | with the feature | ms/step | ratio |", "|---|---|---:|---|---:|---:|"]
        for f in features:
            out.append(f'| {f["configuration"]} | {f["baseline"]} | {f["baselineMillisecondsPerStep"]:.2f} | {f["variant"]} | '
                       f'{f["variantMillisecondsPerStep"]:.2f} | {f["ratio"]:.2f}× |')
        out.append("")
    return out


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: benchmarks-page.py docs/BENCHMARKS.md RUN.json [RUN.json …]")
    with open(argv[0]) as f:
        page = f.read()
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        sys.exit(f"benchmarks-page: {argv[0]} needs one {BEGIN} and one {END} after it")
    generated = [BEGIN, "<!-- Written by scripts/benchmarks-page.py from docs/benchmarks/*.json (make benchmarks-page); do not edit by hand. -->", ""]
    for path in argv[1:]:
        with open(path) as f:
            generated += run_tables(os.path.basename(path), json.load(f))
    generated.append(END)
    before, rest = page.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    sys.stdout.write(before + "\n".join(generated) + after)


if __name__ == "__main__":
    main(sys.argv[1:])
