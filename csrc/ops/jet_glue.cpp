// Device-independent glue of the jet: GEMMs through ATen (MKL on CPU, cuBLAS on CUDA) on stacked
// primal and tangent rows; the fused elementwise work goes to the device's JetDevice functions.
#include <algorithm>

#include "kernels/jet_cpu.h"  // jet_layer_slots and the layer buffer layout
#include "ops/jet.h"
#include "ops/settings.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

// View of hidden layer l's buffer inside the flat saved tensor: [2d + 3, N, W_l].
at::Tensor layer_view(const MlpShape& s, const at::Tensor& saved, size_t l) {
  int64_t offset = 0;
  for (size_t i = 0; i < l; ++i) offset += jet_layer_slots(s.d) * s.n * s.widths[i];
  const int64_t w = s.widths[l];
  return saved.narrow(0, offset, jet_layer_slots(s.d) * s.n * w)
      .view({jet_layer_slots(s.d), s.n, w});
}

// (h, T_1..T_d) of a layer buffer as [(1+d) N, W].
at::Tensor layer_output(const MlpShape& s, const at::Tensor& layer) {
  return layer.narrow(0, s.d + 1, s.d + 1).view({(s.d + 1) * s.n, layer.size(2)});
}

// a^T b for tall row-major a [K, M] and b [K, N]. One GEMM with a long K runs poorly on few cores
// (MKL splits the small M x N output); a batch of K-chunks and a sum is ~1.6x faster (measured
// 98 -> 160 GFLOP/s, float32, K = 24576, M = N = 64, 2 cores).
at::Tensor mm_tn(const at::Tensor& a, const at::Tensor& b) {
  const int64_t k = a.size(0), m = a.size(1), n = b.size(1);
  const int64_t chunks = a.device().is_cpu() ? std::min<int64_t>(8, k / 1024) : 1;
  if (chunks < 2) return at::mm(a.t(), b);
  const int64_t len = k / chunks, main = len * chunks;
  at::Tensor out = at::bmm(a.narrow(0, 0, main).view({chunks, len, m}).transpose(1, 2),
                           b.narrow(0, 0, main).view({chunks, len, n}))
                       .sum(0);  // [M, N]
  if (main < k) out.addmm_(a.narrow(0, main, k - main).t(), b.narrow(0, main, k - main));
  return out;
}

at::Tensor normalise(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return (x - shift) / scale;  // [N, d]
}

// " or [1]" where the device has a jet that saves nothing for this shape (error messages).
const char* recompute_hint(const JetDevice& dev, const MlpShape& s) {
  return dev.recompute_fits != nullptr && dev.recompute_fits(s) ? " or [1]" : "";
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> jet_forward(const JetDevice& dev, const MlpShape& s,
                                               const at::Tensor& x, const at::Tensor& shift,
                                               const at::Tensor& scale, at::TensorList weights,
                                               at::TensorList biases, const at::Tensor& saved) {
  if (dev.fused_forward != nullptr) {
    auto fused = dev.fused_forward(s, x, shift, scale, weights, biases, saved);
    if (fused) return *fused;
  }
  const int64_t n = s.n, d = s.d;
  const CublasTf32Scope tf32(gemms_use_tf32(x));     // TF32 GEMMs only when asked for
  const at::Tensor xn = normalise(x, shift, scale);  // [N, d]
  at::Tensor prev;                                   // [(1+d) N, W_{l-1}]
  for (size_t l = 0; l < s.widths.size(); ++l) {
    const int64_t w = s.widths[l];
    at::Tensor layer = layer_view(s, saved, l);  // [2d+3, N, W]
    at::Tensor z = layer[0];                     // [N, W]
    at::Tensor zt = layer.narrow(0, 1, d);       // [d, N, W]
    at::Tensor h = layer[d + 1];                 // [N, W]
    at::Tensor p2 = layer[2 * d + 2];            // [N, W]
    const at::Tensor& a = weights[l];            // [W, W_{l-1}]
    // GEMM without bias: the fused kernel adds it while it reads z anyway.
    if (l == 0) {
      // z = A xn; Zt_j = A[:, j] / scale_j for every point (T_0 = diag(1 / scale)).
      at::mm_out(z, xn, a.t());
      zt.copy_((a.t() / scale.unsqueeze(1)).unsqueeze(1).expand({d, n, w}));
    } else {
      at::Tensor zs = layer.narrow(0, 0, d + 1).view({(d + 1) * n, w});  // [(1+d) N, W]
      at::mm_out(zs, prev, a.t());
    }
    dev.activation_forward(s, biases[l], layer);
    prev = layer_output(s, layer);
  }
  const at::Tensor& a_out = weights.back();                                       // [m, W_L]
  at::Tensor y = at::addmm(biases.back(), prev.narrow(0, 0, n), a_out.t());       // [N, m]
  at::Tensor jt = at::mm(prev.narrow(0, n, d * n), a_out.t()).view({d, n, s.m});  // [d, N, m]
  at::Tensor jac = jt.permute({1, 2, 0}).contiguous();                            // [N, m, d]
  return {y, jac};
}

JetGrads jet_backward(const JetDevice& dev, const MlpShape& s, const at::Tensor& grad_y,
                      const at::Tensor& grad_J, const at::Tensor& x, const at::Tensor& shift,
                      const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                      const at::Tensor& saved) {
  const int64_t n = s.n, d = s.d, m = s.m;
  const size_t hidden = s.widths.size();
  const CublasTf32Scope tf32(gemms_use_tf32(x));  // TF32 GEMMs only when asked for
  JetGrads g;
  g.weights.resize(hidden + 1);
  g.biases.resize(hidden + 1);

  // Output layer: G = (ybar, Jbar_1..d) stacked as [(1+d) N, m].
  at::Tensor gout = pooled_empty((d + 1) * n * m, x.options()).view({d + 1, n, m});
  gout[0].copy_(grad_y);
  gout.narrow(0, 1, d).copy_(grad_J.permute({2, 0, 1}));
  const at::Tensor gflat = gout.view({(d + 1) * n, m});
  at::Tensor h_last = layer_output(s, layer_view(s, saved, hidden - 1));  // [(1+d) N, W_L]
  g.weights[hidden] = mm_tn(gflat, h_last);                               // [m, W_L]
  g.biases[hidden] = grad_y.sum(0);                                       // [m]
  // Ping-pong buffers for (hbar, Tbar) / (zbar, Ztbar), [(1+d) N, W] each.
  const int64_t wmax = *std::max_element(s.widths.begin(), s.widths.end());
  at::Tensor bufs[2] = {pooled_empty((d + 1) * n * wmax, x.options()),
                        pooled_empty((d + 1) * n * wmax, x.options())};
  auto rows = [&](int which, int64_t w) {
    return bufs[which].narrow(0, 0, (d + 1) * n * w).view({(d + 1) * n, w});
  };
  int cur = 0;
  at::Tensor grad = rows(cur, s.widths[hidden - 1]);  // [(1+d) N, W_L]
  at::mm_out(grad, gflat, weights[hidden]);

  for (size_t l = hidden; l-- > 0;) {
    const int64_t w = s.widths[l];
    const at::Tensor layer = layer_view(s, saved, l);  // [2d+3, N, W]
    dev.activation_backward(s, layer, grad);
    const at::Tensor zbar = grad.narrow(0, 0, n);  // [N, W]
    g.biases[l] = zbar.sum(0);                     // [W]
    if (l > 0) {
      const at::Tensor h_prev = layer_output(s, layer_view(s, saved, l - 1));  // [(1+d) N, W']
      g.weights[l] = mm_tn(grad, h_prev);                                      // [W, W']
      cur = 1 - cur;
      at::Tensor next = rows(cur, s.widths[l - 1]);  // [(1+d) N, W']
      at::mm_out(next, grad, weights[l]);
      grad = next;
    } else {
      // First layer: input xn with constant tangents T_0 = diag(1 / scale).
      const at::Tensor xn = normalise(x, shift, scale);                              // [N, d]
      const at::Tensor ztbar_sum = grad.narrow(0, n, d * n).view({d, n, w}).sum(1);  // [d, W]
      const at::Tensor& a = weights[0];                                              // [W, d]
      g.weights[0] = mm_tn(zbar, xn) + (ztbar_sum / scale.unsqueeze(1)).t();
      const at::Tensor xnbar = at::mm(zbar, a);  // [N, d]
      g.x = xnbar / scale;
      g.shift = -g.x.sum(0);
      g.scale = -(xnbar * xn).sum(0) / scale - (ztbar_sum * a.t()).sum(1) / (scale * scale);
    }
  }
  return g;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_on(
    const JetDevice& dev, c10::DeviceType device_type, const at::Tensor& x, const at::Tensor& shift,
    const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
    c10::string_view activation) {
  const char* op = "fluxkern.mlp_jet";
  const MlpShape s = check_mlp(op, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().type() == device_type, op, ": the ", c10::DeviceTypeName(device_type),
              " kernel was called with x on ", x.device());
  if (dev.recompute_chosen != nullptr && dev.recompute_chosen(s)) {
    auto [y, jac] = dev.recompute_forward(s, x, shift, scale, weights, biases);
    // [1]: marks a forward that saved nothing (its backward recomputes it)
    return {y, jac, at::zeros({1}, x.options())};
  }
  at::Tensor saved = pooled_empty(jet_saved_numel(s), x.options());  // [saved numel]
  auto [y, jac] = jet_forward(dev, s, x, shift, scale, weights, biases, saved);
  return {y, jac, saved};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_on(const JetDevice& dev, c10::DeviceType device_type, const at::Tensor& grad_y,
                    const at::Tensor& grad_J, const at::Tensor& x, const at::Tensor& shift,
                    const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                    c10::string_view activation, const at::Tensor& saved) {
  const char* op = "fluxkern.mlp_jet_backward";
  const MlpShape s = check_mlp(op, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().type() == device_type, op, ": the ", c10::DeviceTypeName(device_type),
              " kernel was called with x on ", x.device());
  TORCH_CHECK_VALUE(grad_y.sizes() == at::IntArrayRef({s.n, s.m}), op, ": grad_y must be [", s.n,
                    ", ", s.m, "], got ", shape_str(grad_y));
  TORCH_CHECK_VALUE(grad_J.sizes() == at::IntArrayRef({s.n, s.m, s.d}), op, ": grad_J must be [",
                    s.n, ", ", s.m, ", ", s.d, "], got ", shape_str(grad_J));
  TORCH_CHECK(grad_y.device() == x.device() && grad_J.device() == x.device() &&
                  saved.device() == x.device(),
              op, ": grad_y, grad_J and saved must be on the device of x (", x.device(), "), got ",
              grad_y.device(), ", ", grad_J.device(), " and ", saved.device());
  // A forward that saved nothing returns a [1] marker (never the size of the layer buffers: at
  // least 2d + 3 per point and layer, or 0 without points).
  const bool recompute = dev.recompute_fits != nullptr && saved.dim() == 1 && saved.numel() == 1 &&
                         dev.recompute_fits(s);
  TORCH_CHECK_VALUE(saved.dim() == 1 && (saved.numel() == jet_saved_numel(s) || recompute), op,
                    ": saved must be the buffer returned by mlp_jet for these arguments ([",
                    jet_saved_numel(s), "]", recompute_hint(dev, s), "), got ", shape_str(saved));
  TORCH_CHECK_TYPE(
      grad_y.scalar_type() == x.scalar_type() && grad_J.scalar_type() == x.scalar_type() &&
          saved.scalar_type() == x.scalar_type(),
      op, ": grad_y, grad_J and saved must have the dtype of x (", x.scalar_type(), "), got ",
      grad_y.scalar_type(), ", ", grad_J.scalar_type(), " and ", saved.scalar_type());
  JetGrads g = recompute
                   ? dev.recompute_backward(s, grad_y, grad_J, x, shift, scale, weights, biases)
                   : jet_backward(dev, s, grad_y, grad_J, x, shift, scale, weights, biases,
                                  saved.contiguous());
  return {g.x, g.shift, g.scale, g.weights, g.biases};
}

}  // namespace fluxkern
