// CPU kernel of the residual Jacobian; see jacobian_cpu.h. One point at a time: forward jet into
// the scratch, residual seeds, then one reverse pass per residual into the point's output rows.
#include "kernels/jacobian_cpu.h"

#include <algorithm>

namespace fluxkern {
namespace {

constexpr int64_t kJacMaxLayers = 17;  // hidden layers (at most 16, as the ops allow) + output

// gf [R, m + m d] += sign * dr_i/dF_f at one point (F: the fields y, J of residual.h).
template <typename T>
void field_gradient_at(const MonomialTable<T>& t, const T* y, const T* jac, const T* cols, T sign,
                       T* gf) {
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

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < n; ++k) acc += a[k] * b[k];
  return acc;
}

// out[k] += c * a[k]
template <typename T>
void axpy(T c, const T* a, int64_t n, T* out) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) out[k] += c * a[k];
}

// Offsets (elements) of one point's layers in the scratch, and of the parameters in a row.
struct Offsets {
  // hidden layer l: h [W], ds [W], d2s [W], T [d, W], Zt [d, W], starting at layer[l]
  int64_t layer[kJacMaxLayers];
  int64_t h0 = 0, y = 0, jac = 0, gf = 0, buf0 = 0, buf1 = 0, total = 0;
  int64_t max_w = 0;
};

Offsets scratch_offsets(int64_t d, int64_t m, int64_t hidden, const int64_t* widths,
                        int64_t n_res) {
  Offsets o;
  int64_t at = 0;
  for (int64_t l = 0; l < hidden; ++l) {
    o.layer[l] = at;
    at += (3 + 2 * d) * widths[l];
    o.max_w = std::max(o.max_w, widths[l]);
  }
  o.h0 = at;
  at += d;
  o.y = at;
  at += m;
  o.jac = at;
  at += m * d;
  o.gf = at;
  at += n_res * (m + m * d);
  o.buf0 = at;
  at += (1 + d) * o.max_w;
  o.buf1 = at;
  at += (1 + d) * o.max_w;
  o.total = at;
  return o;
}

// The jet at one point x [d] into the scratch (values, s', s'', tangents, pre-activation
// tangents per hidden layer), y [m] and jac [m, d]. Tangents only when `tangents`.
template <typename T>
void forward_point(const JacobianNet<T>& net, const Offsets& o, const T* xq, bool tangents, T* s) {
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
          activation_eval(net.act, net.biases[l][k] + dot(a + k * win, hin, win));
      h[k] = v.s;
      ds[k] = v.ds;
      d2s[k] = v.d2s;
    }
    if (tangents) {
      for (int64_t j = 0; j < d; ++j) {
        for (int64_t k = 0; k < w; ++k) {
          zt[j * w + k] =
              l == 0 ? a[k * win + j] / net.scale[j] : dot(a + k * win, tin + j * win, win);
          t[j * w + k] = ds[k] * zt[j * w + k];
        }
      }
    }
    hin = h;
    tin = t;
    win = w;
  }
  const T* ao = net.weights[hidden];  // [m, W_L]
  for (int64_t q = 0; q < net.m; ++q) {
    s[o.y + q] = net.biases[hidden][q] + dot(ao + q * win, hin, win);
    for (int64_t j = 0; j < d; ++j) {
      s[o.jac + q * d + j] = tangents ? dot(ao + q * win, tin + j * win, win) : T(0);
    }
  }
}

// out [n_params] += d(seed . (y, J))/dtheta: the reverse pass of DESIGN.md section 3 for one
// point, seeded with ybar = seed[0:m], Jbar = seed[m:] ([m, d]).
template <typename T>
void reverse_point(const JacobianNet<T>& net, const Offsets& o, const int64_t* off_w,
                   const int64_t* off_b, const T* seed, bool any_t, T* s, T* out) {
  const int64_t d = net.d, m = net.m, hidden = net.hidden;
  const T* jb = seed + m;  // [m, d]
  int64_t w = net.widths[hidden - 1];
  {
    const T* hl = s + o.layer[hidden - 1];
    const T* tl = hl + 3 * w;  // [d, W_L]
    const T* ao = net.weights[hidden];
    T* gw = out + off_w[hidden];
    T* hb = s + o.buf0;  // [W]
    T* tb = hb + w;      // [d, W]
    std::fill(hb, hb + (1 + d) * w, T(0));
    for (int64_t q = 0; q < m; ++q) {
      out[off_b[hidden] + q] += seed[q];
      axpy(seed[q], hl, w, gw + q * w);
      axpy(seed[q], ao + q * w, w, hb);
      if (!any_t) continue;
      for (int64_t j = 0; j < d; ++j) {
        const T c = jb[q * d + j];
        if (c == T(0)) continue;
        axpy(c, tl + j * w, w, gw + q * w);
        axpy(c, ao + q * w, w, tb + j * w);
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
    T* gw = out + off_w[l];  // [W, Win]
    T* gb = out + off_b[l];  // [W]
    for (int64_t k = 0; k < w; ++k) {
      gb[k] += zb[k];
      axpy(zb[k], hin, win, gw + k * win);
    }
    if (any_t) {
      for (int64_t k = 0; k < w; ++k) {
        T* row = gw + k * win;
        if (l == 0) {  // T_0 = diag(1 / scale)
          for (int64_t j = 0; j < d; ++j) row[j] += ztb[j * w + k] / net.scale[j];
        } else {
          for (int64_t j = 0; j < d; ++j) axpy(ztb[j * w + k], tin + j * win, win, row);
        }
      }
    }
    if (l == 0) break;
    const T* a = net.weights[l];  // [W, Win]
    T* hb_next = s + o.buf0;      // [Win] (hb and tb are no longer read)
    T* tb_next = hb_next + win;   // [d, Win]
    std::fill(hb_next, hb_next + (any_t ? 1 + d : 1) * win, T(0));
    for (int64_t k = 0; k < w; ++k) {
      axpy(zb[k], a + k * win, win, hb_next);
      if (!any_t) continue;
      for (int64_t j = 0; j < d; ++j) axpy(ztb[j * w + k], a + k * win, win, tb_next + j * win);
    }
    w = win;
  }
}

}  // namespace

int64_t residual_jacobian_scratch(int64_t d, int64_t m, int64_t hidden, const int64_t* widths,
                                  int64_t n_res) {
  return scratch_offsets(d, m, hidden, widths, n_res).total;
}

template <typename T>
void residual_jacobian_cpu(const JacobianNet<T>& net, const JacobianBlock<T>& block, int64_t n0,
                           int64_t n1, T* scratch) {
  const MonomialTable<T>& t = block.table;
  const int64_t d = net.d, m = net.m, hidden = net.hidden, n_res = t.n_res;
  const int64_t nf = m + m * d;
  const Offsets o = scratch_offsets(d, m, hidden, net.widths, n_res);
  int64_t off_w[kJacMaxLayers], off_b[kJacMaxLayers];
  int64_t at = 0, win = d;
  for (int64_t l = 0; l <= hidden; ++l) {
    const int64_t w = l < hidden ? net.widths[l] : m;
    off_w[l] = at;
    at += w * win;
    off_b[l] = at;
    at += w;
    win = w;
  }
  bool tangents = false;  // does any monomial read J?
  for (int64_t k = 0; k < t.n_mono; ++k) {
    for (int q = 2; q < kMonoCols; ++q) tangents |= t.index[k * kMonoCols + q] >= m;
  }
  T* gf = scratch + o.gf;  // [R, nf]
  for (int64_t p = n0; p < n1; ++p) {
    T* r = block.r + p * n_res;  // [R]
    std::fill(r, r + n_res, T(0));
    T* rows = block.jac + p * n_res * block.n_params;  // [R, n_params], accumulated below
    std::fill(rows, rows + n_res * block.n_params, T(0));
    for (int side = 0; side < (block.paired ? 2 : 1); ++side) {
      const int64_t q = p + side * block.n;
      const T sign = side == 0 ? T(1) : T(-1);
      forward_point(net, o, block.x + q * d, tangents, scratch);
      const T* y = scratch + o.y;
      const T* jac = scratch + o.jac;
      const T* cols = block.cols + q * t.n_cols;
      residuals_at(t, y, jac, cols, sign, r);
      std::fill(gf, gf + n_res * nf, T(0));
      field_gradient_at(t, y, jac, cols, sign, gf);
      for (int64_t i = 0; i < n_res; ++i) {
        const T* seed = gf + i * nf;  // [m + m d]
        bool any = false, any_t = false;
        for (int64_t f = 0; f < nf; ++f) {
          any |= seed[f] != T(0);
          any_t |= f >= m && seed[f] != T(0);
        }
        if (!any) continue;
        reverse_point(net, o, off_w, off_b, seed, any_t, scratch,
                      block.jac + (p * n_res + i) * block.n_params);
      }
    }
  }
}

template void residual_jacobian_cpu<float>(const JacobianNet<float>&, const JacobianBlock<float>&,
                                           int64_t, int64_t, float*);
template void residual_jacobian_cpu<double>(const JacobianNet<double>&,
                                            const JacobianBlock<double>&, int64_t, int64_t,
                                            double*);

}  // namespace fluxkern
