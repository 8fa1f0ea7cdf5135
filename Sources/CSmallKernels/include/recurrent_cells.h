#ifndef RNNKIT_RECURRENT_CELLS_H
#define RNNKIT_RECURRENT_CELLS_H

// A gated cell's recurrent step with the product and the cell's element-wise step fused, as
// oneDNN's RNN primitive does it: the recurrent weights are packed once per pass into panels of
// 16 (or 8) units holding every gate's columns side by side, and each block of the product
// h_{t−1}·U [rows, 16 units × gates] is finished (activations, state update) while still in
// registers, so the gates never travel to memory and back between the product and the cell.
// AVX-512 (F, BW, DQ, VL; 16-unit panels) or AVX2 + FMA (8-unit panels), as the small kernels'
// one choice per process; the functions return 0, doing nothing, on the portable path (forced by
// rnnkit_small_kernels_force, or a CPU without AVX2), and the caller runs the product and the
// step apart. The counts are sized for the widest panels. Float, row-major, Keras's gate order, tanh and sigmoid
// (σ(x) = ½ + ½·tanh(x/2)) as the other kernels compute them.

// The columns of one packed panel on the path in use: 16 (AVX-512), 8 (AVX2 + FMA), 0 (none).
long rnnkit_panel_width(void);

// Floats the packed weights of a cell with `gates` gate blocks (4: LSTM, 3: GRU) and `units` units
// take: ceil(units / 16) panels of units × gates × 16.
long rnnkit_cell_packed_count(long gates, long units);

// Packs U [units, gates·units] (row stride gates·units) into `packed` (rnnkit_cell_packed_count
// floats); units past the last full panel are zero. Returns 0 where the fused steps do not run.
int rnnkit_cell_pack(long gates, long units, const float *u, float *packed);

// LSTM, tanh and sigmoid: on entry gates [batch, 4·units] holds x_t·W + b. With previousState
// (h_{t−1}, [batch, units]) the product h_{t−1}·U is added (NULL: h_{t−1} = 0, no product). Then,
// as Keras: i, f, o = σ(·), c̃ = tanh(·) written back into gates; c = f·c_{t−1} + i·c̃ into cell;
// tanh(c) into activatedCell; h = o·tanh(c) into state. previousCell [batch, units] (zeros allowed).
// Returns 0, doing nothing, where the fused steps do not run.
int rnnkit_lstm_forward_step(long batch, long units, const float *packed, const float *previousState,
                             const float *previousCell, float *gates, float *cell, float *activatedCell, float *state);

// GRU with the reset gate after the product (Keras's default), tanh and sigmoid: on entry gates
// [batch, 3·units] holds x_t·W + b (z, r, h). u = recurrentBias + h_{t−1}·U (previousForProduct,
// which under recurrent dropout is h_{t−1} ⊙ m; NULL: h_{t−1} = 0, u = recurrentBias). Then, as
// Keras: z = σ(x_z + u_z), r = σ(x_r + u_r), ĥ = tanh(x_h + r·u_h) written back into gates, u_h
// into auxiliary [batch, units], h = z·h_{t−1} + (1 − z)·ĥ into state (previousState: h_{t−1}).
// U packed by rnnkit_cell_pack with 3 gates. Returns 0 where the fused steps do not run.
int rnnkit_gru_forward_step(long batch, long units, const float *packed, const float *recurrentBias,
                            const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                            float *state);

// LSTM's backward step for tanh and sigmoid, on 16 lanes: with dh = upstream + carried (either
// NULL for zeros), gates the forward step's activated i, f, c̃, o [batch, 4·units] and a = tanh(c):
// dc = dh·o·(1 − a²) (+ cellGradient when hasLaterCell); writes d(pre-activation) of each gate,
// dc·c̃·i(1 − i), dc·c_{t−1}·f(1 − f), dc·i·(1 − c̃²), dh·a·o(1 − o), into gateGradient and
// dc·f into cellGradient. Returns 0, doing nothing, where the fused steps do not run.
int rnnkit_lstm_backward_step(long batch, long units, const float *gates, const float *previousCell, const float *activatedCell,
                              const float *upstream, const float *carried, float *cellGradient, int hasLaterCell,
                              float *gateGradient);

// A product against weights packed once per pass. P [depth, columns], element (k, j) at
// b[j·columnStride + k·depthStride] (U: columnStride 1, depthStride its row length; Uᵀ: the
// reverse), is packed into panels of 16 columns, each `depth` rows of 16 (zero past the last
// column). Then C [rows, columns] = A [rows, depth'] · P[first..<first + depth', :] (+ C when
// beta is 1), with `packed` pointing at row `first` of the first panel (packed + first·16) and
// panelDepth the depth the panels were packed with. Return 0 where the fused steps do not run.
long rnnkit_panels_count(long columns, long depth);
int rnnkit_pack_panels(long columns, long depth, const float *b, long columnStride, long depthStride, float *packed);
int rnnkit_packed_product(long rows, long columns, long depth, const float *a, long lda, const float *packed, long panelDepth,
                          int beta, float *c, long ldc);

// A weight gradient over every step at once: C [rows, columns] (+)= Aᵀ · B for A stored
// [depth, rows] (row stride lda) and B stored [depth, columns] (row stride ldb), both read where
// they lie (B's rows in blocks that stay in the L2 cache). dU = H_prevᵀ·dG and dW = Xᵀ·dG.
// beta 0 or 1. With columnSums (NULL for none), also writes the sums of B's columns over the
// depth there (a bias's gradient, Σ_t dG_t), from each block of B while it is in the cache.
// AVX-512 only: returns 0, doing nothing, on the other paths (OpenBLAS then runs it).
int rnnkit_transposed_a_product(long rows, long columns, long depth, const float *a, long lda, const float *b, long ldb, int beta,
                                float *c, long ldc, float *columnSums);

// The element-wise steps alone, after the product ran elsewhere, with tanh and sigmoid: LSTM from
// the pre-activations in gates [rows, 4·units] (as rnnkit_lstm_forward_step after its product),
// GRU reset-after from the input side in gates [rows, 3·units] and recurrent = h_{t−1}·U + b′
// [rows, 3·units] (as rnnkit_gru_forward_step after its product). On 8 lanes on the AVX2 and
// AVX-512 paths; return 0, doing nothing, on the portable path.
int rnnkit_lstm_step(long rows, long units, float *gates, const float *previousCell, float *cell, float *activatedCell,
                     float *state);
int rnnkit_gru_step(long rows, long units, float *gates, const float *recurrent, const float *previousState, float *auxiliary,
                    float *state);

// Half-precision weights, widened to float in registers (vcvtph2ps: AVX-512F on the AVX-512 path,
// F16C on the AVX2 one); every sum, activation and state stays float, so with weights that are
// binary16 values these give the float kernels' results bit for bit. A cell's U is packed by
// rnnkit_cell_pack_half (rnnkit_cell_packed_half_count binary16 units): its first
// rnnkit_cell_half_gates(gates) gates in binary16, the others in float, in panels of the same
// shape as rnnkit_cell_pack's (see recurrent_cells.c for why not every gate).
// rnnkit_half_panel_width: the panel width (16, 8), or 0 where the path in use cannot widen them
// (portable, or AVX2 without F16C); the packing and the two steps return 0, doing nothing, there.
long rnnkit_half_panel_width(void);
long rnnkit_cell_half_gates(long gates);
long rnnkit_cell_packed_half_count(long gates, long units);
int rnnkit_cell_pack_half(long gates, long units, const float *u, unsigned short *packed);
int rnnkit_lstm_forward_step_half(long batch, long units, const unsigned short *packed, const float *previousState,
                                  const float *previousCell, float *gates, float *cell, float *activatedCell, float *state);
int rnnkit_gru_forward_step_half(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                 const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                 float *state);

// Rounds `count` floats to binary16 (to nearest, ties to even, as vcvtps2ph with rounding mode 0)
// into `half`, or only checks them when `half` is NULL. Returns the index of the first value
// binary16 cannot hold (NaN, or beyond ±65504, its largest finite value), or -1 when all fit;
// `flushed` (optional) receives how many non-zero values round to ±0 (those under 2^-25 in size).
long rnnkit_half_from_floats(const float *x, long count, unsigned short *half, long *flushed);

// bfloat16 weights: every gate of U in bfloat16 (float's upper 16 bits), widened in registers by
// an integer shift or mask, which leaves the conversion unit (and the FMA ports) alone; sums,
// activations and states stay float, so with weights that are bfloat16 values these give the
// float kernels' results bit for bit. In each row of a 16-unit panel, gates 2m and 2m + 1 share
// one vector of 16 lanes of 32 bits (gate 2m in the low halves, 2m + 1 in the high ones); an odd
// last gate (GRU's candidate) is 16 bfloat16 on its own. AVX-512 only for now:
// rnnkit_bfloat16_panel_width is 16 on the AVX-512 path, else 0, and the packing and the steps
// return 0, doing nothing, where it is 0. rnnkit_cell_packed_bfloat16_count: bfloat16 units.
long rnnkit_bfloat16_panel_width(void);
long rnnkit_cell_packed_bfloat16_count(long gates, long units);
int rnnkit_cell_pack_bfloat16(long gates, long units, const float *u, unsigned short *packed);
int rnnkit_lstm_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *previousState,
                                      const float *previousCell, float *gates, float *cell, float *activatedCell, float *state);
int rnnkit_gru_forward_step_bfloat16(long batch, long units, const unsigned short *packed, const float *recurrentBias,
                                     const float *previousForProduct, const float *previousState, float *gates, float *auxiliary,
                                     float *state);

// Rounds `count` floats to bfloat16 (to nearest, ties to even) into `bf16`, or only checks them
// when `bf16` is NULL. Returns the index of the first value bfloat16 cannot hold (NaN, ±infinity,
// or a finite value so near float's largest that it rounds to infinity), or -1 when all fit.
long rnnkit_bfloat16_from_floats(const float *x, long count, unsigned short *bf16);

#endif
