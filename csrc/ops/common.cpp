#include "ops/common.h"

#include <sstream>
#include <utility>

#include "kernels/residual.h"  // kMonoCols

namespace fluxkern {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << "[";
  for (int64_t i = 0; i < t.dim(); ++i) os << (i ? ", " : "") << t.size(i);
  os << "]";
  return os.str();
}

Activation parse_activation(const std::string& name, const char* op) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "sin") return Activation::Sin;
  if (name == "silu") return Activation::Silu;
  TORCH_CHECK_VALUE(false, op, ": unsupported activation '", name,
                    "'; supported: 'tanh', 'sin', 'silu'");
}

MlpShape check_mlp(const char* op, const at::Tensor& x, const at::Tensor& shift,
                   const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                   const std::string& activation) {
  MlpShape s;
  s.act = parse_activation(activation, op);
  TORCH_CHECK_VALUE(x.dim() == 2, op, ": x must be 2-D [N, d], got shape ", shape_str(x));
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
                   ": x must be float32 or float64, got ", x.scalar_type());
  s.n = x.size(0);
  s.d = x.size(1);
  TORCH_CHECK_VALUE(s.d >= 1 && s.d <= kMaxInputs, op, ": x has d = ", s.d,
                    " input columns (shape ", shape_str(x), "); supported: 1..", kMaxInputs);
  TORCH_CHECK_VALUE(weights.size() == biases.size(), op, ": got ", weights.size(), " weights but ",
                    biases.size(), " biases; need one bias per weight");
  const int64_t hidden = static_cast<int64_t>(weights.size()) - 1;
  TORCH_CHECK_VALUE(hidden >= 1 && hidden <= kMaxHidden, op, ": got ", weights.size(),
                    " linear layers (", hidden, " hidden); supported: 1..", kMaxHidden,
                    " hidden layers plus the output layer");

  auto same = [&](const at::Tensor& t, const std::string& name) {
    TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), op, ": ", name, " has dtype ",
                     t.scalar_type(), " but x has ", x.scalar_type(), "; all must match");
    TORCH_CHECK(t.device() == x.device(), op, ": ", name, " is on ", t.device(), " but x is on ",
                x.device(), "; all must be on one device");
  };
  same(shift, "shift");
  same(scale, "scale");
  TORCH_CHECK_VALUE(shift.dim() == 1 && shift.size(0) == s.d, op, ": shift must be [d] = [", s.d,
                    "], got ", shape_str(shift));
  TORCH_CHECK_VALUE(scale.dim() == 1 && scale.size(0) == s.d, op, ": scale must be [d] = [", s.d,
                    "], got ", shape_str(scale));

  int64_t fan_in = s.d;
  for (int64_t l = 0; l <= hidden; ++l) {
    const at::Tensor& w = weights[l];
    const at::Tensor& b = biases[l];
    const std::string wn = "weights[" + std::to_string(l) + "]";
    const std::string bn = "biases[" + std::to_string(l) + "]";
    same(w, wn);
    same(b, bn);
    TORCH_CHECK_VALUE(w.dim() == 2 && w.size(1) == fan_in, op, ": ", wn, " must be [out, ", fan_in,
                      "] (nn.Linear layout, in = previous width), got ", shape_str(w));
    const int64_t out = w.size(0);
    TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == out, op, ": ", bn, " must be [", out,
                      "] to match ", wn, " ", shape_str(w), ", got ", shape_str(b));
    if (l < hidden) {
      TORCH_CHECK_VALUE(out >= 1 && out <= kMaxWidth, op, ": hidden width ", out, " of ", wn,
                        " is outside the supported 1..", kMaxWidth);
      s.widths.push_back(out);
    } else {
      TORCH_CHECK_VALUE(out >= 1 && out <= kMaxOutputs, op, ": the output layer ", wn, " has ", out,
                        " outputs; supported: 1..", kMaxOutputs);
      s.m = out;
    }
    fan_in = out;
  }
  return s;
}

int64_t jet_saved_numel(const MlpShape& s) {
  int64_t total = 0;
  for (int64_t w : s.widths) total += (2 * s.d + 3) * s.n * w;
  return total;
}

at::Tensor check_program(const char* op, const MlpShape& s, const at::Tensor& x,
                         const at::Tensor& cols, const at::Tensor& table, const at::Tensor& coef,
                         int64_t n_res) {
  const std::pair<const at::Tensor*, const char*> named[] = {
      {&cols, "cols"}, {&table, "table"}, {&coef, "coef"}};
  for (const auto& [t, name] : named) {
    TORCH_CHECK(t->device() == x.device(), op, ": ", name, " is on ", t->device(), " but x is on ",
                x.device(), "; all must be on one device");
  }
  TORCH_CHECK_VALUE(cols.dim() == 2 && cols.size(0) == s.n, op, ": cols must be [", s.n,
                    ", K] (one row per row of x), got ", shape_str(cols));
  TORCH_CHECK_TYPE(table.scalar_type() == at::kInt, op, ": table must be int32, got ",
                   table.scalar_type());
  TORCH_CHECK_VALUE(table.dim() == 2 && table.size(1) == kMonoCols, op, ": table must be [M, ",
                    kMonoCols, "], got ", shape_str(table));
  TORCH_CHECK_VALUE(coef.dim() == 1 && coef.size(0) == table.size(0), op, ": coef must be [",
                    table.size(0), "] (one per table row), got ", shape_str(coef));
  TORCH_CHECK_TYPE(cols.scalar_type() == x.scalar_type() && coef.scalar_type() == x.scalar_type(),
                   op, ": cols and coef must have the dtype of x (", x.scalar_type(), "), got ",
                   cols.scalar_type(), " and ", coef.scalar_type());
  const at::Tensor tab = table.to(at::kCPU).contiguous();  // [M, 5], on the host
  const int32_t* ix = tab.data_ptr<int32_t>();
  const int64_t n_fields = s.m + s.m * s.d;
  for (int64_t k = 0; k < tab.size(0); ++k) {
    const int32_t* row = ix + k * kMonoCols;
    TORCH_CHECK_VALUE(row[0] >= 0 && row[0] < n_res, op, ": table row ", k, " names residual ",
                      row[0], " of n_res = ", n_res);
    TORCH_CHECK_VALUE(row[1] >= -1 && row[1] < cols.size(1), op, ": table row ", k,
                      " names coefficient column ", row[1], " of ", cols.size(1), " in cols");
    for (int q = 2; q < kMonoCols; ++q) {
      TORCH_CHECK_VALUE(row[q] >= -1 && row[q] < n_fields, op, ": table row ", k, " names field ",
                        row[q], " of ", n_fields, " (m + m d)");
    }
  }
  return tab;
}

}  // namespace fluxkern
