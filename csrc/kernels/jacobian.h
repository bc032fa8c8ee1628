// The residual Jacobian at one point (issue 13), written once for the CPU loop
// (kernels/jacobian_cpu.h) and the CUDA kernel (kernels/jacobian_cuda.cu). For a point (pair):
// the residuals r [R] and their Jacobian dr/dtheta [R, n_params] with respect to every weight and
// bias, in one pass: the jet forward (DESIGN.md section 3) with its per-layer values kept in a
// scratch, dr_i/dy and dr_i/dJ by the product rule on the monomial table (kernels/residual.h),
// then for each residual the jet's reverse pass seeded with them, written straight into the
// point's row (p, i, :) of the output. No per-point graph, no [P, R, W, W] temporaries. Raw
// pointers, no torch headers.
//
// Parameter order of a row (theta): weights[0], biases[0], weights[1], biases[1], ..., each
// weight row-major [out, in] (fluxkern.ops.parameter_layout).
#pragma once

#include <cstdint>

#include "kernels/activations.h"
#include "kernels/residual.h"

#if defined(__CUDACC__)
#define FK_JAC_SIMD
#define FK_JAC_SIMD_SUM(acc)
#else
#define FK_JAC_SIMD _Pragma("omp simd")
#define FK_JAC_SIMD_SUM(acc) _Pragma("omp simd reduction(+ : acc)")
#endif

namespace fluxkern {

constexpr int64_t kJacMaxHidden = 16;                 // hidden layers (as the ops allow)
constexpr int64_t kJacMaxLayers = kJacMaxHidden + 1;  // + the output layer

// The MLP: sizes and raw views of contiguous tensors, held by value (a kernel argument).
template <typename T>
struct JacobianNet {
  int64_t d = 0;                      // inputs
  int64_t m = 0;                      // outputs
  int64_t hidden = 0;                 // hidden layers L (1..kJacMaxHidden)
  int64_t widths[kJacMaxHidden];      // hidden widths W_l
  const T* weights[kJacMaxLayers];    // [W_l, W_{l-1}] row-major (W_{-1} = d, W_L = m)
  const T* biases[kJacMaxLayers];     // [W_l]
  const T* shift = nullptr;           // [d]
  const T* scale = nullptr;           // [d]
  Activation act = Activation::Tanh;  //
};

// The block of points and the outputs.
template <typename T>
struct JacobianBlock {
  const T* x;              // [P, d] (paired: side a rows, then side b rows)
  const T* cols;           // [P, K]
  MonomialTable<T> table;  // residuals (its m, d are the net's)
  int64_t n = 0;           // points (pairs when paired)
  bool paired = false;     //
  int64_t n_params = 0;    // sum of the weights' and biases' sizes
  T* r;                    // out [n, R]
  T* jac;                  // out [n, R, n_params]
};

// Offsets (elements) of one point's values in the scratch and of the parameters in an output row.
struct JacobianPlan {
  // hidden layer l: h [W], s' [W], s'' [W], T [d, W], Zt [d, W], from layer[l]
  int64_t layer[kJacMaxHidden];
  int64_t h0 = 0;                // [d] standardised inputs
  int64_t y = 0;                 // [m]
  int64_t jac = 0;               // [m, d]
  int64_t gf = 0;                // [R, m + m d] residual seeds dr_i/dF
  int64_t buf0 = 0;              // [(1 + d) max W] adjoints (hbar, Tbar)
  int64_t buf1 = 0;              // [(1 + d) max W] adjoints (zbar, Ztbar)
  int64_t scratch = 0;           // scratch elements per point in flight
  int64_t off_w[kJacMaxLayers];  // weights[l] in a row of jac
  int64_t off_b[kJacMaxLayers];  // biases[l]
  bool tangents = true;          // some monomial reads J (else no tangents are propagated)
};

// The plan of a net with R residuals; `tangents`: whether the table reads J.
template <typename T>
FK_HD JacobianPlan jacobian_plan(const JacobianNet<T>& net, int64_t n_res, bool tangents) {
  JacobianPlan o;
  const int64_t d = net.d, m = net.m;
  int64_t at = 0, max_w = 0;
  for (int64_t l = 0; l < net.hidden; ++l) {
    o.layer[l] = at;
    at += (3 + 2 * d) * net.widths[l];
    max_w = net.widths[l] > max_w ? net.widths[l] : max_w;
  }
  o.h0 = at;
  o.y = o.h0 + d;
  o.jac = o.y + m;
  o.gf = o.jac + m * d;
  o.buf0 = o.gf + n_res * (m + m * d);
  o.buf1 = o.buf0 + (1 + d) * max_w;
  o.scratch = o.buf1 + (1 + d) * max_w;
  int64_t p = 0, win = d;
  for (int64_t l = 0; l <= net.hidden; ++l) {
    const int64_t w = l < net.hidden ? net.widths[l] : m;
    o.off_w[l] = p;
    p += w * win;
    o.off_b[l] = p;
    p += w;
    win = w;
  }
  o.tangents = tangents;
  return o;
}

template <typename T>
FK_HD T jac_dot(const T* a, const T* b, int64_t n) {
  T acc = T(0);
  FK_JAC_SIMD_SUM(acc)
  for (int64_t k = 0; k < n; ++k) acc += a[k] * b[k];
  return acc;
}

// out[k] += c * a[k]
template <typename T>
FK_HD void jac_axpy(T c, const T* a, int64_t n, T* out) {
  FK_JAC_SIMD
  for (int64_t k = 0; k < n; ++k) out[k] += c * a[k];
}

template <typename T>
FK_HD void jac_zero(T* a, int64_t n) {
  for (int64_t k = 0; k < n; ++k) a[k] = T(0);
}

// gf [R, m + m d] += sign * dr_i/dF_f at one point (F: the fields y, J of residual.h).
template <typename T>
FK_HD void residual_seeds_at(const MonomialTable<T>& t, const T* y, const T* jac, const T* cols,
                             T sign, T* gf) {
  const int64_t nf = t.m + t.m * t.d;
  for (int64_t k = 0; k < t.n_mono; ++k) {
    const int32_t* ix = t.index + k * kMonoCols;
    const T base = sign * t.coef[k] * (ix[1] < 0 ? T(1) : cols[ix[1]]);
    const T f1 = field_value(ix[2], t.m, y, jac);
    const T f2 = field_value(ix[3], t.m, y, jac);
    const T f3 = field_value(ix[4], t.m, y, jac);
    const T partial[3] = {base * f2 * f3, base * f1 * f3, base * f1 * f2};
    for (int q = 0; q < 3; ++q) {
      if (ix[2 + q] >= 0) gf[ix[0] * nf + ix[2 + q]] += partial[q];
    }
  }
}

// The jet at one point x [d] into the scratch s: per hidden layer h, s', s'' and (when
// plan.tangents) T and Zt; then y [m] and J [m, d] (zero without tangents).
template <typename T>
FK_HD void jacobian_forward(const JacobianNet<T>& net, const JacobianPlan& o, const T* xq, T* s) {
  const int64_t d = net.d, hidden = net.hidden;
  T* h0 = s + o.h0;
  for (int64_t k = 0; k < d; ++k) h0[k] = (xq[k] - net.shift[k]) / net.scale[k];
  const T* hin = h0;
  const T* tin = nullptr;
  int64_t win = d;
  for (int64_t l = 0; l < hidden; ++l) {
    const int64_t w = net.widths[l];
    const T* a = net.weights[l];  // [W, Win]
    T* h = s + o.layer[l];
    T* ds = h + w;
    T* d2s = ds + w;
    T* t = d2s + w;     // [d, W]
    T* zt = t + d * w;  // [d, W]
    for (int64_t k = 0; k < w; ++k) {
      const ActivationValue<T> v =
          activation_eval(net.act, net.biases[l][k] + jac_dot(a + k * win, hin, win));
      h[k] = v.s;
      ds[k] = v.ds;
      d2s[k] = v.d2s;
    }
    if (o.tangents) {
      for (int64_t j = 0; j < d; ++j) {
        for (int64_t k = 0; k < w; ++k) {
          const T z =
              l == 0 ? a[k * win + j] / net.scale[j] : jac_dot(a + k * win, tin + j * win, win);
          zt[j * w + k] = z;
          t[j * w + k] = ds[k] * z;
        }
      }
    }
    hin = h;
    tin = t;
    win = w;
  }
  const T* ao = net.weights[hidden];  // [m, W_L]
  for (int64_t q = 0; q < net.m; ++q) {
    s[o.y + q] = net.biases[hidden][q] + jac_dot(ao + q * win, hin, win);
    for (int64_t j = 0; j < d; ++j) {
      s[o.jac + q * d + j] = o.tangents ? jac_dot(ao + q * win, tin + j * win, win) : T(0);
    }
  }
}

// out [n_params] += d(seed . (y, J))/dtheta at the point whose jet is in s: the reverse pass of
// DESIGN.md section 3 seeded with ybar = seed[0:m] and Jbar = seed[m:] ([m, d]); the tangent
// half only when any_t (some Jbar != 0).
template <typename T>
FK_HD void jacobian_reverse(const JacobianNet<T>& net, const JacobianPlan& o, const T* seed,
                            bool any_t, T* s, T* out) {
  const int64_t d = net.d, m = net.m, hidden = net.hidden;
  const T* jb = seed + m;  // [m, d]
  int64_t w = net.widths[hidden - 1];
  {
    const T* hl = s + o.layer[hidden - 1];
    const T* tl = hl + 3 * w;  // [d, W_L]
    const T* ao = net.weights[hidden];
    T* gw = out + o.off_w[hidden];
    T* hb = s + o.buf0;  // [W]
    T* tb = hb + w;      // [d, W]
    jac_zero(hb, (1 + d) * w);
    for (int64_t q = 0; q < m; ++q) {
      out[o.off_b[hidden] + q] += seed[q];
      jac_axpy(seed[q], hl, w, gw + q * w);
      jac_axpy(seed[q], ao + q * w, w, hb);
      if (!any_t) continue;
      for (int64_t j = 0; j < d; ++j) {
        const T c = jb[q * d + j];
        if (c == T(0)) continue;
        jac_axpy(c, tl + j * w, w, gw + q * w);
        jac_axpy(c, ao + q * w, w, tb + j * w);
      }
    }
  }
  for (int64_t l = hidden - 1; l >= 0; --l) {
    const int64_t win = l == 0 ? d : net.widths[l - 1];
    const T* h = s + o.layer[l];
    const T* ds = h + w;
    const T* d2s = ds + w;
    const T* zt = d2s + w + d * w;                          // [d, W]
    const T* hin = l == 0 ? s + o.h0 : s + o.layer[l - 1];  // [Win]
    const T* tin = l == 0 ? nullptr : hin + 3 * win;        // [d, Win]
    const T* hb = s + o.buf0;
    const T* tb = hb + w;
    T* zb = s + o.buf1;  // [W]
    T* ztb = zb + w;     // [d, W]
    for (int64_t k = 0; k < w; ++k) zb[k] = hb[k] * ds[k];
    if (any_t) {
      for (int64_t j = 0; j < d; ++j) {
        for (int64_t k = 0; k < w; ++k) {
          zb[k] += tb[j * w + k] * d2s[k] * zt[j * w + k];
          ztb[j * w + k] = tb[j * w + k] * ds[k];
        }
      }
    }
    T* gw = out + o.off_w[l];  // [W, Win]
    T* gb = out + o.off_b[l];  // [W]
    for (int64_t k = 0; k < w; ++k) {
      gb[k] += zb[k];
      jac_axpy(zb[k], hin, win, gw + k * win);
    }
    if (any_t) {
      for (int64_t k = 0; k < w; ++k) {
        T* row = gw + k * win;
        if (l == 0) {  // T_0 = diag(1 / scale)
          for (int64_t j = 0; j < d; ++j) row[j] += ztb[j * w + k] / net.scale[j];
        } else {
          for (int64_t j = 0; j < d; ++j) jac_axpy(ztb[j * w + k], tin + j * win, win, row);
        }
      }
    }
    if (l == 0) break;
    const T* a = net.weights[l];  // [W, Win]
    T* hb_next = s + o.buf0;      // [Win] (hb and tb are not read any more)
    T* tb_next = hb_next + win;   // [d, Win]
    jac_zero(hb_next, (any_t ? 1 + d : 1) * win);
    for (int64_t k = 0; k < w; ++k) {
      jac_axpy(zb[k], a + k * win, win, hb_next);
      if (!any_t) continue;
      for (int64_t j = 0; j < d; ++j) {
        jac_axpy(ztb[j * w + k], a + k * win, win, tb_next + j * win);
      }
    }
    w = win;
  }
}

// Point (pair) p of the block: its row of r and its rows of jac, written whole. Residual rows
// whose seed dr_i/d(y, J) is zero at the point (e.g. another block's residuals in a segmented
// group) are left zero without a reverse pass. s: [plan.scratch].
template <typename T>
FK_HD void jacobian_point(const JacobianNet<T>& net, const JacobianBlock<T>& block,
                          const JacobianPlan& o, int64_t p, T* s) {
  const MonomialTable<T>& t = block.table;
  const int64_t n_res = t.n_res, m = net.m, nf = m + m * net.d;
  T* r = block.r + p * n_res;                        // [R]
  T* rows = block.jac + p * n_res * block.n_params;  // [R, n_params]
  jac_zero(r, n_res);
  jac_zero(rows, n_res * block.n_params);
  T* gf = s + o.gf;  // [R, nf]
  for (int side = 0; side < (block.paired ? 2 : 1); ++side) {
    const int64_t q = p + side * block.n;
    const T sign = side == 0 ? T(1) : T(-1);
    jacobian_forward(net, o, block.x + q * net.d, s);
    const T* y = s + o.y;
    const T* jac = s + o.jac;
    const T* cols = block.cols + q * t.n_cols;
    residuals_at(t, y, jac, cols, sign, r);
    jac_zero(gf, n_res * nf);
    residual_seeds_at(t, y, jac, cols, sign, gf);
    for (int64_t i = 0; i < n_res; ++i) {
      const T* seed = gf + i * nf;  // [m + m d]
      bool any = false, any_t = false;
      for (int64_t f = 0; f < nf; ++f) {
        any = any || seed[f] != T(0);
        any_t = any_t || (f >= m && seed[f] != T(0));
      }
      if (any) jacobian_reverse(net, o, seed, any_t, s, rows + i * block.n_params);
    }
  }
}

}  // namespace fluxkern
