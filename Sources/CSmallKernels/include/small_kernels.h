#ifndef RNNKIT_SMALL_KERNELS_H
#define RNNKIT_SMALL_KERNELS_H

// Matrix products too small for OpenBLAS to run well: A read where it lies, B read in place or (for
// narrow even widths) copied once per call with each row repeated four times.
// Row-major, as cblas_?gemm with CblasRowMajor: C [m, n] = alpha * op(A) [m, k] * op(B) [k, n]
// + beta * C, lda/ldb/ldc the row strides of the matrices as stored. beta == 0 never reads C.
// With transB, B (stored [n, k]) is transposed into a stack buffer first, so n * k must not
// exceed RNNKIT_SMALL_TRANSPOSED_LIMIT.
//
// The float kernel runs on AVX2 with FMA when the core has them (checked once, at run time) and
// on portable C otherwise; the double kernel is portable C (it serves tests in Double).

#define RNNKIT_SMALL_TRANSPOSED_LIMIT 4096

void rnnkit_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);
void rnnkit_small_dgemm(int transA, int transB, long m, long n, long k, double alpha,
                        const double *a, long lda, const double *b, long ldb, double beta, double *c, long ldc);

// C = tanh(C + A * B) (A [m, k], B [k, n], no transposes): a recurrent step's product with its
// activation fused. Returns 0, doing nothing, where the core lacks AVX2 (the caller then runs the
// product and the activation apart).
int rnnkit_small_sgemm_nn_tanh(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc);

// Gathers images (bytes, rows x columns each) at indices into a time-major batch
// [rows, batch, columns] of floats, each byte times scale.
void rnnkit_gather_images(const unsigned char *pixels, const long *indices, long batch, long rows, long columns,
                          float scale, float *destination);

// Which float kernel runs: "avx2-fma" or "portable".
const char *rnnkit_small_kernels_isa(void);
// Makes the float kernel portable C (1) or back to what the core supports (0): for tests.
void rnnkit_small_kernels_force_portable(int portable);

#endif
