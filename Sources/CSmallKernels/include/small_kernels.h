#ifndef RNNKIT_SMALL_KERNELS_H
#define RNNKIT_SMALL_KERNELS_H

// Matrix products too small for OpenBLAS to run well: A read where it lies, B read in place or (for
// narrow even widths) copied once per call with each row repeated four times.
// Row-major, as cblas_?gemm with CblasRowMajor: C [m, n] = alpha * op(A) [m, k] * op(B) [k, n]
// + beta * C, lda/ldb/ldc the row strides of the matrices as stored. beta == 0 never reads C.
// With transB, B (stored [n, k]) is transposed into a stack buffer first, so n * k must not
// exceed RNNKIT_SMALL_TRANSPOSED_LIMIT. With transA, a long k and an m that fills more vector
// lanes than n (a weight gradient), the kernel computes Cᵀ = op(B)ᵀ·op(A)ᵀ and scatters it into C.
//
// The float kernels run on one of three paths, chosen once per process from the CPU's features
// (cpuid and XGETBV, never its model number): "avx512" (AVX-512 F, BW, DQ and VL, with the OS
// saving the zmm and mask registers), "avx2-fma" (AVX2 with FMA) or "portable" C; the double kernel
// is portable C (it serves tests in Double). AVX-512 bodies run: the small sgemm's transposed
// weight gradient, and its blocked form where n is above 8 and either a multiple of 16 or k is at
// least 64; the fused tanh step and the tanh SimpleRNN's whole recurrence for widths that are
// multiples of 16 (its backward pass from 32); the softmax. The AVX-512 path runs the AVX2 bodies
// of the rest, chosen by shape (measured on a Zen 4 core, which runs a 512-bit operation as two
// 256-bit halves: an AVX-512 flattened body was slower than the AVX2 one, and a masked store,
// needed for a ragged row end, keeps the next load of those bytes waiting): the flattened widths
// (4, 6, 10, 12, 14), n ≤ 8, a ragged n with a short k; and the image gather, Adam's update, the
// finiteness check and the row sums (memory-bound, or a few instructions a step). Each path gives
// the same bits on every run; the paths differ from each other in the last bits (fused
// multiply-adds, the order of partial sums, the reciprocal's estimate in tanh).

#define RNNKIT_SMALL_TRANSPOSED_LIMIT 4096

void rnnkit_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);
void rnnkit_small_dgemm(int transA, int transB, long m, long n, long k, double alpha,
                        const double *a, long lda, const double *b, long ldb, double beta, double *c, long ldc);

// C = tanh(C + A * B) (A [m, k], B [k, n], no transposes): a recurrent step's product with its
// activation fused. Returns 0, doing nothing, on the portable path (the caller then runs the
// product and the activation apart).
int rnnkit_small_sgemm_nn_tanh(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc);

// A tanh SimpleRNN's recurrence over every step in one call, for units <= 64 (U [units, units]):
// for t = 0..steps-1, gates_t = tanh(gates_t + h_{t-1} U) in place, h_{-1} = h0 (NULL for zeros),
// h_t = gates_t; on entry gates [steps, batch, units] holds each step's x_t W + b. Returns 0, doing
// nothing, on the portable path or where units exceeds 64.
int rnnkit_rnn_tanh_forward(long steps, long batch, long units, float *gates, const float *u, const float *h0);

// Its backward pass: for t = steps-1..0, dz_t = (upstream_t + dz_{t+1} U^T) (1 - h_t^2), the
// product absent at the last step (and upstream_t at every step but the last unless sequence).
// states [steps, batch, units] are the forward pass's h_t; upstream is [steps, batch, units] when
// sequence, else [batch, units] (the last step's); dz [steps, batch, units] receives every step's;
// carried [batch, units] receives d loss / d h0 = dz_0 U^T when wantInitial and is not touched
// otherwise. Returns 0, doing nothing, as the forward pass does.
int rnnkit_rnn_tanh_backward(long steps, long batch, long units, const float *states, const float *upstream, int sequence,
                             const float *u, float *dz, float *carried, int wantInitial);

// Gathers images (bytes, rows x columns each) at indices into a time-major batch
// [rows, batch, columns] of floats, each byte times scale.
void rnnkit_gather_images(const unsigned char *pixels, const long *indices, long batch, long rows, long columns,
                          float scale, float *destination);

// Adam's update over `count` weights (the optimiser's arena), as Keras computes it with the bias
// corrections folded into stepSize: m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2),
// w -= stepSize m / (sqrt(v) + epsilon), each operation rounded on its own.
void rnnkit_adam_step(float *weights, const float *gradients, float *m, float *v, long count,
                      float oneMinusBeta1, float oneMinusBeta2, float epsilon, float stepSize);

// result [columns] = the sum of matrix [rows, columns]'s rows (row-major, dense), four rows at a
// time: result[j] += (m[i][j] + m[i+1][j]) + (m[i+2][j] + m[i+3][j]), then the rest one by one.
void rnnkit_sum_rows(const float *matrix, long rows, long columns, float *result);

// The softmax of each row of values [rows, columns] (row-major, dense) in place: e^(x − max) over
// their sum. Up to 64 columns with a vector exp (about 1 ulp; 0 below the smallest normal float) on
// the AVX2 and AVX-512 paths, otherwise the C library's expf.
void rnnkit_softmax_rows(float *values, long rows, long columns);

// 1 when every value is finite, 0 when one is NaN or infinite.
int rnnkit_all_finite(const float *values, long count);

// The path the float kernels run on: "avx512", "avx2-fma" or "portable". Chosen at first use: the
// best this CPU runs, or the one the environment variable RNNKIT_SMALL_KERNELS names (same names)
// when the CPU runs it; an unknown or unsupported name there leaves the best path, silently.
const char *rnnkit_small_kernels_isa(void);
// 1 when this CPU runs the path `name` ("avx512", "avx2-fma", "portable"; NULL or "" for the best
// it runs), 0 otherwise (or for an unknown name).
int rnnkit_small_kernels_supports(const char *name);
// Makes the float kernels run on the path `name` (NULL or "": the best this CPU runs) and returns
// 1; returns 0 and changes nothing when the name is unknown or the CPU lacks that path. For tests
// and benchmarks: call it while no kernel runs on another thread.
int rnnkit_small_kernels_force(const char *name);
// Makes the float kernels portable C (1) or back to the best this CPU runs (0): for tests.
void rnnkit_small_kernels_force_portable(int portable);

// tanh and the logistic sigmoid (½ + ½·tanh(x/2)) of `count` floats in place, on the one tanh
// every kernel uses (vector_tanh.h): the same bits as the fused kernels' tanh on the AVX2 and
// AVX-512 paths, the scalar form on the portable path. NaN stays NaN.
void rnnkit_tanh_in_place(float *values, long count);
void rnnkit_sigmoid_in_place(float *values, long count);

#endif
