// The fused per-tile CPU kernel of the block loss: for a tile of points it runs the whole jet
// (values and input tangents), the residuals and the augmented-Lagrangian loss, and the reverse
// pass down to the weight gradients, with every intermediate in a per-thread scratch buffer that
// stays in cache. No BLAS: the narrow GEMMs of these networks (inner sizes 20-128, a few dozen
// rows per tile) run through register-blocked micro-kernels that vectorise along the feature
// dimension. Raw pointers, no torch headers (DESIGN.md section 2).
//
// Tile layout (points-major). A tile holds P point rows (a paired tile: its pairs' side-a rows,
// then their side-b rows) and, when any point of the tile needs derivatives, their d tangent
// directions: R = (1 + dt) P rows, row dir * P + p (dir 0: values; dir 1 + j: d/dx_j), dt = d or
// 0. Every row is padded to Wp = W rounded up to one 32-byte vector; padding columns stay exactly
// zero through the pass (zero weights and biases there).
//
// Tangent directions. Normally the d input directions (J = dy/dx). When every derivative that
// the residuals read enters through one directional derivative J v with a constant v (e.g.
// u_t + beta u_x), the kernel propagates that single tangent instead of d (one_direction_table).
//
// Tangents are skipped for a tile whose points no derivative term touches: a point needs them
// when a monomial that reads an entry of J has a nonzero coefficient there (a monomial without
// a coefficient column counts as nonzero everywhere). Boundary, initial and periodic blocks that
// read only y thus cost one row per point instead of 1 + d.
#pragma once

#include <cstdint>

#include "kernels/activations.h"
#include "kernels/residual.h"

namespace fluxkern {

constexpr int64_t kTilePoints = 32;     // point rows per tile (a paired tile: 16 pairs)
constexpr int64_t kTileMaxHidden = 16;  // hidden layers a plan holds
constexpr int64_t kTileMaxWidth = 128;  // widest hidden layer the tile kernel serves
constexpr int64_t kTileMaxInputs = 8;   // input dimensions (as the ops allow)

// Sizes and offsets (in elements) of the packed parameters, the gradient accumulator and the
// scratch buffer of one call; computed once per call on the host by tile_plan().
struct TilePlan {
  int64_t d = 0, m = 0, hidden = 0, n_cols = 0;
  int64_t nt = 0;                 // tangent directions (d, or 1 with one_direction_table)
  int64_t pad = 1;                // vector length in elements (feature padding)
  int64_t width[kTileMaxHidden];  // W_l
  int64_t wpad[kTileMaxHidden];   // Wp_l
  // Packed parameters; the gradient accumulator has the same layout (its `a` parts unused).
  int64_t at[kTileMaxHidden];  // A_l^T   [W_{l-1}, Wp_l]  (W_{-1} = d)
  int64_t a[kTileMaxHidden];   // A_l     [W_l, Wp_{l-1}]  (l >= 1; the reverse GEMM)
  int64_t b[kTileMaxHidden];   // b_l     [Wp_l]
  int64_t ao = 0;              // A_out   [m, Wp_L]
  int64_t bo = 0;              // b_out   [m]
  int64_t packed_size = 0;
  // Scratch of one thread.
  int64_t zz[kTileMaxHidden];  // [R, Wp_l]: GEMM output; value rows then hold s'(z), tangent
                               // rows the tangent pre-activations Zt
  int64_t s2[kTileMaxHidden];  // [P, Wp_l]: s''(z)
  int64_t h[kTileMaxHidden];   // [R, Wp_l]: layer output (values h, tangents T)
  int64_t g[2];                // [R, max Wp]: reverse-pass ping-pong buffers
  int64_t y = 0;               // [R, m]: network outputs (values, then dy/dx_j rows)
  int64_t gy = 0;              // [R, m]: their adjoints
  int64_t xn = 0;              // [P, d]: standardised inputs
  int64_t jac = 0;             // [P, m, nt]
  int64_t ybar = 0;            // [P, m]
  int64_t jbar = 0;            // [P, m, nt]
  int64_t cols = 0;            // [P, K]
  int64_t scratch_size = 0;
};

// The plan for an MLP with d inputs, `hidden` hidden layers of widths[0..hidden), m outputs,
// nt tangent directions and blocks with n_cols coefficient columns, padded to `pad` elements
// (32 bytes / sizeof(T)).
TilePlan tile_plan(int64_t d, int64_t nt, int64_t m, int64_t hidden, const int64_t* widths,
                   int64_t n_cols, int64_t pad);

// If every monomial that reads J reads exactly one entry of it, and the coefficients of each
// family of such monomials (same residual, coefficient column, other factors and output o,
// differing only in the input j) form vectors that are all multiples of one vector v, writes v
// into dir [d] and the table rewritten for the one direction (fields m + o read (J v)_o; at most
// n_mono rows) into index_out [n_mono, 5] and coef_out [n_mono], sets *n_out, and returns true.
// Otherwise (or when no monomial reads J) returns false. Host code.
template <typename T>
bool one_direction_table(const int32_t* index, const T* coef, int64_t n_mono, int64_t m, int64_t d,
                         T* dir, int32_t* index_out, T* coef_out, int64_t* n_out);

// Copies weights (row-major [out, in] each, hidden layers then the output layer) and biases into
// the packed layout of the plan (zero padding included). packed: [plan.packed_size].
template <typename T>
void tile_pack(const TilePlan& plan, const T* const* weights, const T* const* biases, T* packed);

// Copies the accumulated gradient (packed layout) out to row-major weight and bias gradients.
template <typename T>
void tile_unpack_grads(const TilePlan& plan, const T* grad, T* const* grad_w, T* const* grad_b);

// One block of the fused loss (see residual.h for the table and the loss settings).
template <typename T>
struct TileBlock {
  const T* x;              // [P_all, d] (a paired block: side a rows, then side b rows)
  const T* cols;           // [P_all, K]
  const T* dirs;           // [nt, d] tangent directions, or null for the d unit vectors
  MonomialTable<T> table;  // its d is nt
  LossSpec<T> loss;        //
  int64_t n = 0;           // points (pairs when paired)
  bool paired = false;     //
  T* c;                    // out [n, R]
  T* loss_p;               // out [n]
};

// Number of tiles of a block.
inline int64_t tile_count(int64_t n, bool paired) {
  const int64_t per = paired ? kTilePoints / 2 : kTilePoints;
  return (n + per - 1) / per;
}

// Runs tiles [tile0, tile1) of the block: writes their C and per-point losses and adds their
// weight and bias gradients into `grad` [plan.packed_size] (packed layout). scratch:
// [plan.scratch_size]. shift, scale: [d]; packed: tile_pack's output.
template <typename T>
void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale,
                          const T* packed, const TileBlock<T>& block, int64_t tile0, int64_t tile1,
                          T* grad, T* scratch);

}  // namespace fluxkern
