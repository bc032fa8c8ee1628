// Process-wide settings of the fluxkern ops, set from Python through the module (csrc/module.cpp):
// the precision of fluxkern's own float32 GEMMs on CUDA, which CUDA kernel runs the jet
// forward, and which CPU kernel runs the block loss. Both are read by the ops at call time.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace fluxkern {

// Precision of the float32 GEMMs that fluxkern runs through cuBLAS (jet forward and backward,
// also inside block_loss). "ieee": full float32 (the default). "tf32": TensorFloat-32 tensor
// cores (operands rounded to 10 mantissa bits, float32 accumulation) around fluxkern's GEMMs
// only. No effect on CPU tensors, on float64, or on the fused tile kernel (plain float32 FMAs).
enum class MatmulPrecision : int32_t { Ieee = 0, Tf32 = 1 };

// The CUDA jet forward: "gemm" (cuBLAS GEMMs between elementwise kernels, the default) or
// "tile" (one fused kernel per tile of points, kernels/jet_tile_kernel.cuh; widths <= 128, other
// shapes fall back to "gemm"). The initial value is "tile" when the environment variable
// FLUXKERN_CUDA_TILE is "1" at load time, else "gemm".
enum class CudaJetKernel : int32_t { Gemm = 0, Tile = 1 };

// The CPU block loss: "tile" (the fused per-tile kernel, kernels/loss_tile_cpu.h, for hidden
// widths <= 128; the default) or "gemm" (the jet through BLAS GEMMs, the residual kernel and the
// jet backward). The initial value is "gemm" when the environment variable FLUXKERN_CPU_TILE is
// "0" at load time, else "tile". The CPU jet op follows the same setting: "tile" runs the per-tile
// jet kernels (kernels/jet_tile_cpu.h) for the same widths, "gemm" the BLAS path.
enum class CpuLossKernel : int32_t { Gemm = 0, Tile = 1 };

MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision p);
CudaJetKernel cuda_jet_kernel();
void set_cuda_jet_kernel(CudaJetKernel k);
CpuLossKernel cpu_loss_kernel();
void set_cpu_loss_kernel(CpuLossKernel k);

// Names as used from Python; the parsers return false on an unknown name.
const char* matmul_precision_name(MatmulPrecision p);
bool parse_matmul_precision(const std::string& name, MatmulPrecision* out);
const char* cuda_jet_kernel_name(CudaJetKernel k);
bool parse_cuda_jet_kernel(const std::string& name, CudaJetKernel* out);
const char* cpu_loss_kernel_name(CpuLossKernel k);
bool parse_cpu_loss_kernel(const std::string& name, CpuLossKernel* out);

// While alive and `engage` is true, cuBLAS runs float32 GEMMs with TF32 (torch's global flag,
// legacy and new API together, so torch's consistency check between them holds); the destructor
// restores the previous value. Does nothing when `engage` is false or TF32 is already on.
// The flag is process-global: float32 CUDA matmuls of other threads that run during the scope
// also see it.
class CublasTf32Scope {
 public:
  explicit CublasTf32Scope(bool engage);
  ~CublasTf32Scope();
  CublasTf32Scope(const CublasTf32Scope&) = delete;
  CublasTf32Scope& operator=(const CublasTf32Scope&) = delete;

 private:
  bool changed_ = false;
  at::Float32Precision previous_ = at::Float32Precision::NONE;
};

// True when the GEMMs of an op on `x` run with TF32: x is a float32 CUDA tensor and the setting
// is "tf32".
bool gemms_use_tf32(const at::Tensor& x);

}  // namespace fluxkern
