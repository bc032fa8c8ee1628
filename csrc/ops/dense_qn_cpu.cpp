// CPU glue of the dense quasi-Newton ops: argument checks, the row split over threads, the
// upper-triangle kernels.
#include "kernels/dense_qn_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <type_traits>

#include "ops/common.h"
#include "ops/dense_qn.h"

namespace fluxkern {
namespace {

void check_matrix(const char* op, const at::Tensor& h) {
  TORCH_CHECK_TYPE(h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble, op,
                   ": h must be float32 or float64, got ", h.scalar_type());
  TORCH_CHECK_VALUE(h.dim() == 2 && h.size(0) == h.size(1), op, ": h must be square [P, P], got ",
                    shape_str(h));
  TORCH_CHECK_VALUE(h.is_contiguous(), op, ": h must be contiguous");
}

void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& h,
                at::IntArrayRef shape) {
  TORCH_CHECK_VALUE(t.sizes() == shape, op, ": ", name, " must be ", shape, ", got ", shape_str(t));
  TORCH_CHECK_TYPE(t.scalar_type() == h.scalar_type(), op, ": ", name,
                   " must have the dtype of h (", h.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == h.device(), op, ": ", name, " must be on the device of h (", h.device(),
              ")");
}

// Pieces of the triangle for the threads: one per thread, at most one per 64 rows.
int64_t pieces(int64_t p) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), p / 64));
}

// H x over the pieces of the triangle, `rows(k0, k1, y)` adding rows [k0, k1) into y [P]: one
// partial product per piece (the rows of a piece also add to later rows' entries), summed in
// piece order, so the result is deterministic for a given thread count.
template <typename Rows>
at::Tensor product_by_pieces(const at::Tensor& h, Rows rows) {
  const int64_t p = h.size(0), parts = pieces(p);
  at::Tensor partial = at::zeros({parts, p}, h.options());  // [parts, P]
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sym_product_cpu", [&] {
    scalar_t* yp = partial.data_ptr<scalar_t>();
    at::parallel_for(0, parts, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        rows(triangle_row_split(p, parts, k), triangle_row_split(p, parts, k + 1), yp + k * p);
      }
    });
    for (int64_t k = 1; k < parts; ++k) {
      for (int64_t j = 0; j < p; ++j) yp[j] += yp[k * p + j];
    }
  });
  return parts == 1 ? partial.view({p}) : partial[0].clone();
}

}  // namespace

at::Tensor sym_matvec_cpu(const at::Tensor& h, const at::Tensor& x) {
  constexpr const char* op = "fluxkern.sym_matvec";
  check_matrix(op, h);
  const int64_t p = h.size(0);
  check_like(op, "x", x, h, {p});
  const at::Tensor xc = x.contiguous();
  return product_by_pieces(h, [&](int64_t i0, int64_t i1, auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
    sym_upper_matvec_rows_cpu<T>(p, h.data_ptr<T>(), xc.data_ptr<T>(), i0, i1, y);
  });
}

at::Tensor sym_rank2_update_matvec_cpu(at::Tensor& h, const at::Tensor& u, const at::Tensor& w,
                                       const at::Tensor& x) {
  constexpr const char* op = "fluxkern.sym_rank2_update_matvec_";
  check_matrix(op, h);
  const int64_t p = h.size(0);
  check_like(op, "u", u, h, {p, 2});
  check_like(op, "w", w, h, {2, p});
  check_like(op, "x", x, h, {p});
  const at::Tensor ut = u.t().contiguous(), wc = w.contiguous();  // [2, P] each
  const at::Tensor xc = x.contiguous();                           // [P]
  return product_by_pieces(h, [&](int64_t i0, int64_t i1, auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
    const T* up = ut.data_ptr<T>();
    const T* wp = wc.data_ptr<T>();
    sym_upper_rank2_matvec_rows_cpu<T>(p, h.data_ptr<T>(), up, wp, up + p, wp + p, xc.data_ptr<T>(),
                                       i0, i1, y);
  });
}

void sym_rank2_update_cpu(at::Tensor& h, const at::Tensor& u, const at::Tensor& w) {
  constexpr const char* op = "fluxkern.sym_rank2_update_";
  check_matrix(op, h);
  const int64_t p = h.size(0);
  check_like(op, "u", u, h, {p, 2});
  check_like(op, "w", w, h, {2, p});
  const at::Tensor ut = u.t().contiguous();  // [2, P]
  const at::Tensor wc = w.contiguous();      // [2, P]
  const int64_t parts = pieces(p);
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sym_rank2_update_cpu", [&] {
    scalar_t* hp = h.data_ptr<scalar_t>();
    const scalar_t* up = ut.data_ptr<scalar_t>();
    const scalar_t* wp = wc.data_ptr<scalar_t>();
    at::parallel_for(0, parts, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        sym_upper_rank2_rows_cpu<scalar_t>(p, hp, up, wp, up + p, wp + p,
                                           triangle_row_split(p, parts, k),
                                           triangle_row_split(p, parts, k + 1));
      }
    });
  });
}

}  // namespace fluxkern
