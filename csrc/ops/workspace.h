// Reusable scratch and saved-activation buffers for the CPU ops.
//
// Large fresh allocations are returned to the OS on free, so every step would pay page faults
// for its buffers (measured: more than half of the jet step at N = 8192). The pool keeps a few
// buffers and hands one out again once no tensor refers to its storage any more.
#pragma once

#include <ATen/ATen.h>

namespace fluxkern {

// A contiguous 1-D tensor of `numel` elements with `options`, backed by a pooled buffer that no
// live tensor uses. Contents are uninitialised.
at::Tensor pooled_empty(int64_t numel, const at::TensorOptions& options);

}  // namespace fluxkern
