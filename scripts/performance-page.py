#!/usr/bin/env python3
"""Writes docs/PERFORMANCE.md from `benchmarks --json` files, one per CPU (one run each).

    scripts/performance-page.py docs/benchmarks/*.json > docs/PERFORMANCE.md

Every figure on the page comes from those files; nothing is typed by hand. Each table names the
CPU it was measured on, OpenBLAS's core before and after RNNKit's repair, the machine's measured
multiply-add peak, and PyTorch measured in the same run.
"""
import json
import sys

TARGETS = [
    # (workload name, batch, minimum RNNKit ÷ PyTorch for training)
    ("H128 LSTM", 1.5), ("H128 GRU", 1.5), ("H512 LSTM", 1.2), ("H512 GRU", 1.2),
]


def cpu_title(machine):
    p = machine["processor"]
    brand = f' "{p["brand"]}"' if p.get("brand") else ""
    return f'{p["vendor"]} family {p["family"]} model {p["model"]}{brand}'


def level(features):
    f = set(features)
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= f:
        return "AVX-512" + (" with BF16" if "avx512_bf16" in f else "") + (" and AMX" if "amx_tile" in f else "")
    if {"avx2", "fma"} <= f:
        return "AVX2 with FMA"
    return "AVX" if "avx" in f else "SSE"


def page(runs):
    out = ["# Performance", "",
           "Written by `scripts/performance-page.py` from `swift run -c release benchmarks --json FILE` "
           "(the files are in `docs/benchmarks/`), one run per CPU. PyTorch is measured in the same run "
           "by `Benchmarks/pytorch_baseline.py` (training step: forward, cross-entropy, backward, Adam; "
           "the better of 1 and 2 intra-op threads). The FMA peak is a register-only loop of "
           "multiply-adds at the widest vector width the CPU has, on one core and on all the cores the "
           "model passes use at once: no product with memory traffic can beat it. GFLOP/s count the "
           "GEMMs' multiply-adds (2 FLOPs each).", ""]
    for name, run in runs:
        m = run["machine"]
        peak = run.get("fmaPeak")
        out += [f"## {cpu_title(m)}", ""]
        out += [f'- CPU: {level(m["processor"]["features"])}; features {" ".join(m["processor"]["features"])}.',
                f'- OpenBLAS: `{m["openBLASConfiguration"]}`; core before RNNKit\'s repair **{m["coreBefore"]}**, '
                f'in use **{m["coreAfter"]}** ({m["outcome"]}). RNNKit\'s own kernels: **{run.get("smallKernels", "?")}**.',
                f'- Build: {run["build"]}{", quick pass" if run["quick"] else ""}; {run["workers"]} workers, '
                f'{run["threads"]} OpenBLAS thread per call; PyTorch {run.get("pytorch") or "not measured"}.',
                f'- Source: `docs/benchmarks/{name}`.']
        if peak:
            out.append(f'- FMA peak ({peak["vectorBits"]}-bit): **{peak["oneCoreGFLOPS"]:.1f} GFLOP/s** on one core, '
                       f'**{peak["allCoresGFLOPS"]:.1f}** on {peak["cores"]} cores at once. sgemm {run["gemmSize"]}³ on '
                       f'{peak["cores"]} cores: {run["gemmGFLOPS"]:.1f} GFLOP/s '
                       f'({100 * run["gemmGFLOPS"] / peak["allCoresGFLOPS"]:.0f}% of the peak).')
        out.append("")
        cores = run.get("openBLASCores") or []
        if cores:
            best = max(cores, key=lambda c: c["gflops"])
            used = next((c for c in cores if c["core"].lower() == m["coreAfter"].lower()), None)
            out += ["OpenBLAS's cores this CPU runs, sgemm on one thread, alternating rounds (medians):", "",
                    "| core | GFLOP/s | % of the one-core FMA peak |", "|---|---:|---:|"]
            out += [f'| {c["core"]}{" (in use)" if c is used else ""} | {c["gflops"]:.1f} | {c["percentOfFMAPeak"]:.0f}% |'
                    for c in cores]
            if used:
                out += ["", f'The core in use runs at {100 * used["gflops"] / best["gflops"]:.0f}% of the fastest one here ({best["core"]}).']
            out.append("")
        rows = [k for k in run["kernels"] if k["mode"] == "train"]
        if rows:
            out += ["Training steps (forward, backward, Adam) per batch, medians:", "",
                    "| workload (B, T, D, H) | RNNKit samples/s | PyTorch samples/s | RNNKit ÷ PyTorch | GFLOP/s | % of FMA peak | % of sgemm rate |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
            for k in rows:
                torch = k.get("pytorchSamplesPerSecond")
                ratio = f'{k["blasSamplesPerSecond"] / torch:.2f}×' if torch else "–"
                ofpeak = f'{k["percentOfFMAPeak"]:.0f}%' if k.get("percentOfFMAPeak") is not None else "–"
                theirs = f"{torch:.0f}" if torch else "–"
                out.append(f'| {k["workload"]} | {k["blasSamplesPerSecond"]:.0f} | {theirs} | '
                           f'{ratio} | {k["gflops"]:.1f} | {ofpeak} | {k["percentOfGEMMRate"]:.0f}% |')
            out.append("")
        ends = run.get("endToEnd") or []
        if ends:
            out += ["End to end as `train-blas` runs (60,000 MNIST-shaped images, batch 32), medians:", "",
                    "| model | training samples/s | PyTorch samples/s | RNNKit ÷ PyTorch | inference samples/s |",
                    "|---|---:|---:|---:|---:|"]
            for e in ends:
                torch = e.get("pytorchTrainingSamplesPerSecond")
                rate = e["trainingSamplesPerSecond"]
                theirs = f"{torch:.0f}" if torch else "–"
                ratio = f"{rate / torch:.1f}×" if torch else "–"
                out.append(f'| {e["model"]} | {rate:.0f} | {theirs} | {ratio} | {e["inferenceSamplesPerSecond"]:.0f} |')
            out.append("")
        checks = []
        for workload, minimum in TARGETS:
            k = next((k for k in rows if k["workload"].startswith(workload + " ")), None)
            if k and k.get("pytorchSamplesPerSecond"):
                ratio = k["blasSamplesPerSecond"] / k["pytorchSamplesPerSecond"]
                checks.append(f'{workload} training ≥ {minimum}× PyTorch: {ratio:.2f}× — {"holds" if ratio >= minimum else "does not hold"}')
        model_a = next((e for e in ends if e["model"] == "Model A" and e.get("pytorchTrainingSamplesPerSecond")), None)
        if model_a:
            ratio = model_a["trainingSamplesPerSecond"] / model_a["pytorchTrainingSamplesPerSecond"]
            checks.append(f'Model A ≥ 50× PyTorch: {ratio:.0f}× — {"holds" if ratio >= 50 else "does not hold"}')
        if cores and used:
            share = used["gflops"] / best["gflops"]
            checks.append(f'sgemm on the core in use within 10% of the fastest core: {100 * share:.0f}% — {"holds" if share >= 0.9 else "does not hold"}')
        if checks:
            out += ["Targets (issue 21) in this run:", ""] + [f"- {c}" for c in checks] + [""]
    return "\n".join(out).rstrip() + "\n"


def main(paths):
    if not paths:
        sys.exit("usage: performance-page.py RUN.json [RUN.json …]  (benchmarks --json output, one per CPU)")
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append((path.rsplit("/", 1)[-1], json.load(f)))
    sys.stdout.write(page(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
