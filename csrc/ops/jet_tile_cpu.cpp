// CPU glue of the per-tile jet kernels (csrc/kernels/jet_tile_cpu.h): the forward that saves
// nothing and the backward that recomputes it tile by tile, parallel over chunks of tiles, each
// chunk with its own gradient accumulator (summed in chunk order, so the result is deterministic
// for a given thread count).
#include "kernels/jet_tile_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "ops/jet.h"
#include "ops/settings.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

template <typename T>
TilePlan jet_plan(const MlpShape& s) {
  const int64_t hidden = static_cast<int64_t>(s.widths.size());
  const int64_t bytes = jet_tile_vector_bytes(hidden, s.widths.data(), sizeof(T));
  return tile_plan(s.d, s.d, s.m, hidden, s.widths.data(), 0,
                   bytes / static_cast<int64_t>(sizeof(T)));
}

// The parameters in the tile kernels' packed layout: [plan.packed_size].
template <typename T>
at::Tensor pack_params(const TilePlan& plan, at::TensorList weights, at::TensorList biases,
                       const at::TensorOptions& opts) {
  std::vector<at::Tensor> wc, bc;  // contiguous parameters
  std::vector<const T*> wp, bp;
  for (size_t l = 0; l < weights.size(); ++l) {
    wc.push_back(weights[l].contiguous());
    bc.push_back(biases[l].contiguous());
    wp.push_back(wc.back().data_ptr<T>());
    bp.push_back(bc.back().data_ptr<T>());
  }
  at::Tensor packed = pooled_empty(plan.packed_size, opts);
  tile_pack<T>(plan, wp.data(), bp.data(), packed.data_ptr<T>());
  return packed;
}

// Chunks of tiles per call: one per thread alone; with several threads 8 per thread (at most one
// per tile), handed out dynamically, so that a thread descheduled on a shared machine does not
// hold the others up (measured at load 6 on 2 cores: contiguous halves took up to 10x the
// one-thread time at N = 1280). The chunks depend only on the tile and thread counts, and the
// backward sums their accumulators in chunk order: deterministic for a given thread count.
int64_t chunk_count(int64_t tiles) {
  const int64_t threads = at::get_num_threads();
  return std::max<int64_t>(1, std::min<int64_t>(threads == 1 ? 1 : 8 * threads, tiles));
}

// Calls fn(chunk, worker) for every chunk in [0, chunks) on up to get_num_threads() workers,
// each taking the next chunk from a shared counter; worker in [0, workers) indexes its scratch.
template <typename F>
void for_each_chunk(int64_t chunks, int64_t workers, const F& fn) {
  if (workers <= 1) {
    for (int64_t c = 0; c < chunks; ++c) fn(c, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      for (int64_t c = next++; c < chunks; c = next++) fn(c, w);
    }
  });
}

int64_t worker_count(int64_t chunks) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), chunks));
}

}  // namespace

bool jet_tile_fits(const MlpShape& s) {
  if (static_cast<int64_t>(s.widths.size()) > kTileMaxHidden || s.d > kTileMaxInputs) return false;
  return std::all_of(s.widths.begin(), s.widths.end(),
                     [](int64_t w) { return w <= kTileMaxWidth; });
}

bool jet_tile_chosen(const MlpShape& s) {
  return cpu_loss_kernel() == CpuLossKernel::Tile && jet_tile_fits(s);
}

std::tuple<at::Tensor, at::Tensor> jet_forward_tile_cpu(const MlpShape& s, const at::Tensor& x,
                                                        const at::Tensor& shift,
                                                        const at::Tensor& scale,
                                                        at::TensorList weights,
                                                        at::TensorList biases) {
  const at::TensorOptions opts = x.options();
  at::Tensor y = at::empty({s.n, s.m}, opts);                                   // [N, m]
  at::Tensor jac = at::empty({s.n, s.m, s.d}, opts);                            // [N, m, d]
  const at::Tensor xc = x.contiguous();                                         // [N, d]
  const at::Tensor shift_c = shift.contiguous(), scale_c = scale.contiguous();  // [d]
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "jet_forward_tile_cpu", [&] {
    using T = scalar_t;
    const TilePlan plan = jet_plan<T>(s);
    const at::Tensor packed = pack_params<T>(plan, weights, biases, opts);
    const JetTileInput<T> in{xc.data_ptr<T>(), shift_c.data_ptr<T>(), scale_c.data_ptr<T>(),
                             packed.data_ptr<T>(), s.n};
    const int64_t tiles = jet_tile_count(s.n);
    const int64_t chunks = chunk_count(tiles), workers = worker_count(chunks);
    at::Tensor scratch = pooled_empty(workers * plan.scratch_size, opts);  // [workers, scratch]
    T* sc0 = scratch.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    T* jp = jac.data_ptr<T>();
    for_each_chunk(chunks, workers, [&](int64_t k, int64_t w) {
      jet_forward_tiles_cpu<T>(plan, s.act, in, k * tiles / chunks, (k + 1) * tiles / chunks, yp,
                               jp, sc0 + w * plan.scratch_size);
    });
  });
  return {y, jac};
}

JetGrads jet_backward_tile_cpu(const MlpShape& s, const at::Tensor& grad_y,
                               const at::Tensor& grad_J, const at::Tensor& x,
                               const at::Tensor& shift, const at::Tensor& scale,
                               at::TensorList weights, at::TensorList biases) {
  const at::TensorOptions opts = x.options();
  const size_t hidden = s.widths.size();
  JetGrads g;
  g.x = at::empty({s.n, s.d}, opts);  // [N, d]
  g.scale = at::empty({s.d}, opts);   // [d]
  for (size_t l = 0; l <= hidden; ++l) {
    g.weights.push_back(at::empty(weights[l].sizes(), opts));  // like weights[l]
    g.biases.push_back(at::empty(biases[l].sizes(), opts));    // like biases[l]
  }
  const at::Tensor xc = x.contiguous();                                         // [N, d]
  const at::Tensor gy = grad_y.contiguous();                                    // [N, m]
  const at::Tensor gj = grad_J.contiguous();                                    // [N, m, d]
  const at::Tensor shift_c = shift.contiguous(), scale_c = scale.contiguous();  // [d]
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "jet_backward_tile_cpu", [&] {
    using T = scalar_t;
    const TilePlan plan = jet_plan<T>(s);
    const at::Tensor packed = pack_params<T>(plan, weights, biases, opts);
    const T* pk = packed.data_ptr<T>();
    const T* scl = scale_c.data_ptr<T>();
    const JetTileInput<T> in{xc.data_ptr<T>(), shift_c.data_ptr<T>(), scl, pk, s.n};
    const int64_t tiles = jet_tile_count(s.n);
    const int64_t chunks = chunk_count(tiles), workers = worker_count(chunks);
    const int64_t acc_size = jet_tile_acc_size(plan);
    at::Tensor accs = pooled_empty(chunks * acc_size, opts);               // [chunks, acc]
    at::Tensor scratch = pooled_empty(workers * plan.scratch_size, opts);  // [workers, scratch]
    T* a0 = accs.data_ptr<T>();
    T* sc0 = scratch.data_ptr<T>();
    std::fill(a0, a0 + chunks * acc_size, T(0));
    const T* gyp = gy.data_ptr<T>();
    const T* gjp = gj.data_ptr<T>();
    T* gxp = g.x.data_ptr<T>();
    for_each_chunk(chunks, workers, [&](int64_t k, int64_t w) {
      jet_backward_tiles_cpu<T>(plan, s.act, in, gyp, gjp, k * tiles / chunks,
                                (k + 1) * tiles / chunks, gxp, a0 + k * acc_size,
                                sc0 + w * plan.scratch_size);
    });
    for (int64_t k = 1; k < chunks; ++k) {
      const T* ak = a0 + k * acc_size;
      for (int64_t i = 0; i < acc_size; ++i) a0[i] += ak[i];
    }
    // First layer, tangent part: dA_1[k, i] += (sum_p Ztbar_i)[k] / scale_i; and
    // dl/dscale_i = -(sum_p xnbar_i xn_i) / scale_i - sum_k (sum_p Ztbar_i)[k] A_1[k, i] /
    // scale_i^2.
    const int64_t wp0 = plan.wpad[0], w0 = plan.width[0];
    const T* ztbar = a0 + jet_tile_acc_ztbar(plan);  // [d, Wp_0]
    const T* xx = a0 + jet_tile_acc_xx(plan);        // [d]
    T* gs = g.scale.data_ptr<T>();
    for (int64_t i = 0; i < s.d; ++i) {
      T dot = T(0);
      for (int64_t k = 0; k < w0; ++k) {
        a0[plan.at[0] + i * wp0 + k] += ztbar[i * wp0 + k] / scl[i];
        dot += ztbar[i * wp0 + k] * pk[plan.at[0] + i * wp0 + k];
      }
      gs[i] = -xx[i] / scl[i] - dot / (scl[i] * scl[i]);
    }
    std::vector<T*> gwp, gbp;
    for (size_t l = 0; l <= hidden; ++l) {
      gwp.push_back(g.weights[l].data_ptr<T>());
      gbp.push_back(g.biases[l].data_ptr<T>());
    }
    tile_unpack_grads<T>(plan, a0, gwp.data(), gbp.data());
  });
  g.shift = -g.x.sum(0);  // [d]
  return g;
}

}  // namespace fluxkern
