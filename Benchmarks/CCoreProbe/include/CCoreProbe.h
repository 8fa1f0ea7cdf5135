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

#endif
