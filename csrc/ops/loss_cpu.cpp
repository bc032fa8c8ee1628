// CPU glue of the fused block loss: the residual + loss kernel (csrc/kernels/residual_cpu.cpp)
// parallel over points, the fused per-tile kernel (csrc/kernels/loss_tile_cpu.h) parallel over
// chunks of tiles, and the op entry point. The rest is the device-independent glue
// (loss_glue.cpp).
#include <ATen/Parallel.h>

#include <algorithm>

#include "kernels/jet_tile_cpu.h"
#include "kernels/loss_tile_cpu.h"
#include "kernels/residual_cpu.h"
#include "ops/jet.h"
#include "ops/loss.h"
#include "ops/settings.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

void residual_loss_step_cpu(const ResidualLossStep& st) {
  AT_DISPATCH_FLOATING_TYPES(st.y.scalar_type(), "residual_loss_cpu", [&] {
    const MonomialTable<scalar_t> t = monomial_table<scalar_t>(st);
    const LossSpec<scalar_t> spec = loss_spec<scalar_t>(st);
    const scalar_t* yp = st.y.data_ptr<scalar_t>();
    const scalar_t* jp = st.jac.data_ptr<scalar_t>();
    const scalar_t* cp = st.cols.data_ptr<scalar_t>();
    scalar_t* c = st.c.data_ptr<scalar_t>();
    scalar_t* loss_p = st.loss_p.data_ptr<scalar_t>();
    scalar_t* ybar = st.ybar.data_ptr<scalar_t>();
    scalar_t* jbar = st.jbar.data_ptr<scalar_t>();
    at::parallel_for(0, st.n, 256, [&](int64_t n0, int64_t n1) {
      residual_loss_cpu<scalar_t>(t, spec, st.n, st.paired, n0, n1, yp, jp, cp, c, loss_p, ybar,
                                  jbar);
    });
  });
}

// The whole op through the per-tile kernel. The tiles are split into one contiguous chunk per
// thread, each with its own gradient accumulator; the accumulators are summed in chunk order, so
// the result is deterministic for a given thread count.
std::optional<BlockLossResult> block_loss_tile_cpu(const MlpShape& s, const at::Tensor& x,
                                                   const at::Tensor& shift, const at::Tensor& scale,
                                                   at::TensorList weights, at::TensorList biases,
                                                   const ResidualLossStep& st) {
  if (cpu_loss_kernel() != CpuLossKernel::Tile) return std::nullopt;
  const int64_t hidden = static_cast<int64_t>(s.widths.size());
  if (hidden > kTileMaxHidden) return std::nullopt;
  for (int64_t w : s.widths) {
    if (w > kTileMaxWidth) return std::nullopt;
  }
  const at::TensorOptions opts = x.options();
  at::Tensor c = at::empty({st.n, st.n_res}, opts);  // [N, R]
  at::Tensor loss_p = at::empty({st.n}, opts);       // [N]
  std::vector<at::Tensor> gw, gb;
  for (size_t l = 0; l < weights.size(); ++l) {
    gw.push_back(at::empty(weights[l].sizes(), opts));  // like weights[l]
    gb.push_back(at::empty(biases[l].sizes(), opts));   // like biases[l]
  }
  const at::Tensor xc = x.contiguous();  // [P, d]
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "block_loss_tile_cpu", [&] {
    using T = scalar_t;
    // One tangent direction instead of d where the residuals read only J v (e.g. u_t + c u_x).
    const int64_t n_mono = st.table.size(0);
    at::Tensor table1 = at::empty({n_mono, kMonoCols}, st.table.options());  // [M', 5]
    at::Tensor coef1 = at::empty({n_mono}, st.coef.options());               // [M']
    at::Tensor dirs = at::empty({s.d}, opts);                                // [1, d]
    int64_t n_mono1 = 0;
    // (not when the coefficient gradient is asked for: it is per row of the original table)
    const bool one_dir =
        s.d >= 2 && !st.gcoef.defined() &&
        one_direction_table<T>(st.table.data_ptr<int32_t>(), st.coef.data_ptr<T>(), n_mono, s.m,
                               s.d, dirs.data_ptr<T>(), table1.data_ptr<int32_t>(),
                               coef1.data_ptr<T>(), &n_mono1);
    const int64_t nt = one_dir ? 1 : s.d;
    // 64-byte vectors (the AVX-512 build) where the jet kernels take them (jet_tile_cpu.h).
    const int64_t bytes = jet_tile_vector_bytes(hidden, s.widths.data(), sizeof(T));
    const TilePlan plan = tile_plan(s.d, nt, s.m, hidden, s.widths.data(), st.cols.size(1),
                                    bytes / static_cast<int64_t>(sizeof(T)));
    std::vector<at::Tensor> wc, bc;  // contiguous parameters
    std::vector<const T*> wp, bp;
    for (size_t l = 0; l < weights.size(); ++l) {
      wc.push_back(weights[l].contiguous());
      bc.push_back(biases[l].contiguous());
      wp.push_back(wc.back().data_ptr<T>());
      bp.push_back(bc.back().data_ptr<T>());
    }
    at::Tensor packed = pooled_empty(plan.packed_size, opts);  // [packed_size]
    tile_pack<T>(plan, wp.data(), bp.data(), packed.data_ptr<T>());
    const at::Tensor shift_c = shift.contiguous(), scale_c = scale.contiguous();  // [d]

    TileBlock<T> blk;
    blk.x = xc.data_ptr<T>();
    blk.cols = st.cols.data_ptr<T>();
    blk.dirs = one_dir ? dirs.data_ptr<T>() : nullptr;
    blk.table =
        MonomialTable<T>{one_dir ? table1.data_ptr<int32_t>() : st.table.data_ptr<int32_t>(),
                         one_dir ? coef1.data_ptr<T>() : st.coef.data_ptr<T>(),
                         one_dir ? n_mono1 : n_mono,
                         st.n_res,
                         st.cols.size(1),
                         s.m,
                         nt};
    blk.loss = loss_spec<T>(st);
    blk.n = st.n;
    blk.paired = st.paired;
    blk.c = c.data_ptr<T>();
    blk.loss_p = loss_p.data_ptr<T>();

    const int64_t tiles = tile_count(st.n, st.paired);
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tiles));
    at::Tensor grads = pooled_empty(chunks * plan.packed_size, opts);     // [chunks, packed]
    at::Tensor scratch = pooled_empty(chunks * plan.scratch_size, opts);  // [chunks, scratch]
    T* g0 = grads.data_ptr<T>();
    T* sc0 = scratch.data_ptr<T>();
    std::fill(g0, g0 + chunks * plan.packed_size, T(0));
    const T* pk = packed.data_ptr<T>();
    const T* sh = shift_c.data_ptr<T>();
    const T* scl = scale_c.data_ptr<T>();
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t k = c0; k < c1; ++k) {
        block_loss_tiles_cpu<T>(plan, s.act, sh, scl, pk, blk, k * tiles / chunks,
                                (k + 1) * tiles / chunks, g0 + k * plan.packed_size,
                                sc0 + k * plan.scratch_size);
      }
    });
    for (int64_t k = 1; k < chunks; ++k) {
      const T* gk = g0 + k * plan.packed_size;
      for (int64_t i = 0; i < plan.packed_size; ++i) g0[i] += gk[i];
    }
    std::vector<T*> gwp, gbp;
    for (size_t l = 0; l < weights.size(); ++l) {
      gwp.push_back(gw[l].data_ptr<T>());
      gbp.push_back(gb[l].data_ptr<T>());
    }
    tile_unpack_grads<T>(plan, g0, gwp.data(), gbp.data());
  });
  at::Tensor loss = loss_p.sum();  // fixed-order reduction, as on the GEMM path
  return BlockLossResult{loss, c, gw, gb, coef_gradient(st)};
}

}  // namespace

const LossDevice& cpu_loss_device() {
  static const LossDevice dev{&residual_loss_step_cpu, &block_loss_tile_cpu};
  return dev;
}

BlockLossResult block_loss_cpu(const at::Tensor& x, const at::Tensor& shift,
                               const at::Tensor& scale, at::TensorList weights,
                               at::TensorList biases, c10::string_view activation,
                               const at::Tensor& cols, const at::Tensor& table,
                               const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
                               const at::Tensor& squared, const at::Tensor& red, int64_t n_res,
                               bool paired, bool coef_grad) {
  return block_loss_on(cpu_jet_device(), cpu_loss_device(), c10::DeviceType::CPU, x, shift, scale,
                       weights, biases, activation, cols, table, coef, lam, mu, squared, red, n_res,
                       paired, coef_grad);
}

}  // namespace fluxkern
