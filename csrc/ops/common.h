// Argument checks shared by the CPU and CUDA glue of every op.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "kernels/activations.h"

namespace fluxkern {

// Limits of the jet op (issue: d 1..8, width 1..512, hidden layers 1..16, m 1..32).
constexpr int64_t kMaxInputs = 8;
constexpr int64_t kMaxWidth = 512;
constexpr int64_t kMaxHidden = 16;
constexpr int64_t kMaxOutputs = 32;

// Sizes of a validated MLP.
struct MlpShape {
  int64_t n = 0;                // points
  int64_t d = 0;                // inputs
  int64_t m = 0;                // outputs
  std::vector<int64_t> widths;  // hidden widths, one per hidden layer
  Activation act = Activation::Tanh;
};

// "[3, 4]" for error messages.
std::string shape_str(const at::Tensor& t);

// Parses "tanh" | "sin" | "silu"; anything else is an error naming the valid choices.
Activation parse_activation(const std::string& name, const char* op);

// Checks x [N, d], shift [d], scale [d], weights [W_l, W_{l-1}] and biases [W_l] for one MLP:
// ranks, chained sizes, limits, one floating dtype (float32 or float64), one device.
MlpShape check_mlp(const char* op, const at::Tensor& x, const at::Tensor& shift,
                   const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                   const std::string& activation);

// Checks a residual program's tensors against x and the MLP: cols [N, K], table [M, 5] int32,
// coef [M], all on x's device, cols and coef of x's dtype, and every table entry in range
// (residual < n_res, column < K, field < m + m d), so that no kernel reads out of bounds. The
// entries are read on a host copy (a small device-to-host copy, and a wait for the work queued
// before, when the table is on a GPU), every call: a table changed in place is checked again.
// Returns that host copy [M, 5].
at::Tensor check_program(const char* op, const MlpShape& s, const at::Tensor& x,
                         const at::Tensor& cols, const at::Tensor& table, const at::Tensor& coef,
                         int64_t n_res);

// Total length of the flat buffer saved by the jet forward for the backward.
int64_t jet_saved_numel(const MlpShape& s);

}  // namespace fluxkern
