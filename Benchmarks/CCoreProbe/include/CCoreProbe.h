#ifndef CCOREPROBE_H
#define CCOREPROBE_H

/// The work one core does in one interval of `rnnkit_probe_cores`: `core` is the thread's place,
/// 0 to `cores` − 1; `context` is the caller's.
typedef void (*rnnkit_probe_work)(void *context, int core);

/// Runs `intervals` rounds in which `cores` threads, each pinned to its own CPU of the process's
/// affinity mask (the first `cores` of them), start together and each call `work` once; writes
/// the seconds each took to `seconds[interval * cores + core]`.
///
/// A step's shards run in lockstep on the workers, so the step waits for the slower core. Given
/// the same work on every core, this measures how much slower one core is than another at the
/// same moment (on a shared cloud machine each virtual CPU's speed moves on its own).
///
/// Returns 0 on success; −1, with nothing written, if `cores` is outside 1…64, `intervals` is
/// below 1, fewer than `cores` CPUs are allowed, or a thread cannot start.
int rnnkit_probe_cores(int cores, int intervals, rnnkit_probe_work work, void *context, double *seconds);

/// Runs `iterations` rounds of independent single-precision multiply-adds held in registers at
/// `width` bits (512: AVX-512 F, 256: AVX2 with FMA, 128: SSE multiply then add) and returns the
/// floating-point operations done (2 per multiply-add per lane), or 0 for another width. The
/// caller must check the processor has the width: this runs the instructions unconditionally.
/// Timed, it is the core's peak: what no product with memory traffic can beat.
double rnnkit_fma_loop(int width, long iterations);

#endif
