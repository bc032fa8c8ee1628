#include "ops/settings.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fluxkern {
namespace {

CudaJetKernel initial_cuda_jet_kernel() {
  const char* env = std::getenv("FLUXKERN_CUDA_TILE");
  return env != nullptr && std::strcmp(env, "1") == 0 ? CudaJetKernel::Tile : CudaJetKernel::Gemm;
}

CpuLossKernel initial_cpu_loss_kernel() {
  const char* env = std::getenv("FLUXKERN_CPU_TILE");
  return env != nullptr && std::strcmp(env, "0") == 0 ? CpuLossKernel::Gemm : CpuLossKernel::Tile;
}

std::atomic<int32_t> g_matmul_precision{static_cast<int32_t>(MatmulPrecision::Ieee)};
std::atomic<int32_t> g_cuda_jet_kernel{static_cast<int32_t>(initial_cuda_jet_kernel())};
std::atomic<int32_t> g_cpu_loss_kernel{static_cast<int32_t>(initial_cpu_loss_kernel())};

}  // namespace

MatmulPrecision matmul_precision() {
  return static_cast<MatmulPrecision>(g_matmul_precision.load());
}

void set_matmul_precision(MatmulPrecision p) { g_matmul_precision.store(static_cast<int32_t>(p)); }

CudaJetKernel cuda_jet_kernel() { return static_cast<CudaJetKernel>(g_cuda_jet_kernel.load()); }

void set_cuda_jet_kernel(CudaJetKernel k) { g_cuda_jet_kernel.store(static_cast<int32_t>(k)); }

CpuLossKernel cpu_loss_kernel() { return static_cast<CpuLossKernel>(g_cpu_loss_kernel.load()); }

void set_cpu_loss_kernel(CpuLossKernel k) { g_cpu_loss_kernel.store(static_cast<int32_t>(k)); }

const char* cpu_loss_kernel_name(CpuLossKernel k) {
  return k == CpuLossKernel::Tile ? "tile" : "gemm";
}

bool parse_cpu_loss_kernel(const std::string& name, CpuLossKernel* out) {
  if (name == "gemm") {
    *out = CpuLossKernel::Gemm;
  } else if (name == "tile") {
    *out = CpuLossKernel::Tile;
  } else {
    return false;
  }
  return true;
}

const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::Tf32 ? "tf32" : "ieee";
}

bool parse_matmul_precision(const std::string& name, MatmulPrecision* out) {
  if (name == "ieee") {
    *out = MatmulPrecision::Ieee;
  } else if (name == "tf32") {
    *out = MatmulPrecision::Tf32;
  } else {
    return false;
  }
  return true;
}

const char* cuda_jet_kernel_name(CudaJetKernel k) {
  return k == CudaJetKernel::Tile ? "tile" : "gemm";
}

bool parse_cuda_jet_kernel(const std::string& name, CudaJetKernel* out) {
  if (name == "gemm") {
    *out = CudaJetKernel::Gemm;
  } else if (name == "tile") {
    *out = CudaJetKernel::Tile;
  } else {
    return false;
  }
  return true;
}

// torch keeps two views of the cuBLAS TF32 flag (the legacy float32 matmul precision and the
// per-backend precision of the new API) and refuses to run when they disagree. setAllowTF32CuBLAS
// sets both; TF32 off with consistent flags means the legacy one is "highest", which
// setAllowTF32CuBLAS(false) restores, and the per-backend value read before is put back after it
// (torch's default there is "none", not the "ieee" that setAllowTF32CuBLAS(false) leaves).
CublasTf32Scope::CublasTf32Scope(bool engage) {
  if (!engage) return;
  at::Context& ctx = at::globalContext();
  const at::Float32Precision before =
      ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL);
  if (before == at::Float32Precision::TF32) return;  // already on: nothing to change or restore
  previous_ = before;
  changed_ = true;
  ctx.setAllowTF32CuBLAS(true);
}

CublasTf32Scope::~CublasTf32Scope() {
  if (!changed_) return;
  at::Context& ctx = at::globalContext();
  ctx.setAllowTF32CuBLAS(false);
  ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, previous_);
}

bool gemms_use_tf32(const at::Tensor& x) {
  return x.is_cuda() && x.scalar_type() == at::kFloat &&
         matmul_precision() == MatmulPrecision::Tf32;
}

}  // namespace fluxkern
