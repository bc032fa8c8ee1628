// The per-tile CPU kernels of the jet op (DESIGN.md section 3): the forward writes y and J one tile
// of kTilePoints points at a time with every intermediate in a per-thread scratch buffer, and
// saves nothing; the backward recomputes a tile's forward jet in cache and runs the reverse pass
// with the incoming dl/dy and dl/dJ of its points, accumulating the weight gradients per thread.
// Recomputing the forward costs a third more FLOPs than reading saved layer buffers, but those
// buffers ((2d + 3) N W values per layer) do not stay in cache at these sizes.
//
// Same plan (tile_plan with nt = d, n_cols = 0), parameter packing (tile_pack) and micro-kernels
// as the fused loss kernel (loss_tile_cpu.h). Raw pointers, no torch headers.
#pragma once

#include <cstdint>

#include "kernels/loss_tile_cpu.h"

namespace fluxkern {

// The gradient accumulator of one thread: the packed weight and bias gradients (tile_pack's
// layout), then sum over points of the first layer's tangent adjoints Ztbar_j [d, Wp_0], then
// sum over points of xnbar_i * xn_i [d] (xn the standardised input, xnbar its adjoint).
inline int64_t jet_tile_acc_ztbar(const TilePlan& pl) { return pl.packed_size; }
inline int64_t jet_tile_acc_xx(const TilePlan& pl) { return pl.packed_size + pl.d * pl.wpad[0]; }
inline int64_t jet_tile_acc_size(const TilePlan& pl) { return jet_tile_acc_xx(pl) + pl.d; }

// The inputs of one call.
template <typename T>
struct JetTileInput {
  const T* x = nullptr;       // [N, d]
  const T* shift = nullptr;   // [d]
  const T* scale = nullptr;   // [d]
  const T* packed = nullptr;  // [plan.packed_size], tile_pack's output
  int64_t n = 0;              // points
};

// Bytes per vector for a net with these hidden widths and elements of elem_size bytes: 64 (the
// AVX-512 build) where the machine has AVX-512 and the padding costs little, else 32. The plan
// pads the features to it (tile_plan's pad = bytes / sizeof(T)), and the kernels (these and the
// fused loss's, loss_tile_cpu.h) run the build of the plan's vector size.
int64_t jet_tile_vector_bytes(int64_t hidden, const int64_t* widths, int64_t elem_size);

// Number of tiles of N points.
inline int64_t jet_tile_count(int64_t n) { return (n + kTilePoints - 1) / kTilePoints; }

// Forward for tiles [tile0, tile1): writes their rows of y [N, m] and J [N, m, d].
// scratch: [plan.scratch_size].
template <typename T>
void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                           int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch);

// Backward for tiles [tile0, tile1) given grad_y [N, m] and grad_J [N, m, d]: writes their rows
// of grad_x [N, d] and adds into acc [jet_tile_acc_size(plan)] (layout above).
template <typename T>
void jet_backward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                            const T* grad_y, const T* grad_J, int64_t tile0, int64_t tile1,
                            T* grad_x, T* acc, T* scratch);

}  // namespace fluxkern
