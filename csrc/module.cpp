// The Python module itself (pybind11) and its non-tensor helpers. Tensor ops are registered with
// the dispatcher in registration.cpp, not here.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#include <string>

#include "kernels/jet_cpu.h"
#include "ops/settings.h"

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["compiler"] = FLUXKERN_COMPILER;
  info["torch_version_built_against"] = FLUXKERN_TORCH_VERSION;
  info["cplusplus"] = static_cast<long>(__cplusplus);
#if defined(_OPENMP)
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["threads"] = at::get_num_threads();
  info["cpu_kernels"] = std::string(fluxkern::cpu_kernel_variant());
  info["parallel_info"] = at::get_parallel_info();
#if defined(FLUXKERN_WITH_CUDA)
  info["cuda"] = true;
  info["cuda_architectures"] = std::string(FLUXKERN_CUDA_ARCHS);
#else
  info["cuda"] = false;
  info["cuda_architectures"] = std::string();
#endif
  return info;
}

void set_cuda_matmul_precision(const std::string& mode) {
  fluxkern::MatmulPrecision p;
  if (!fluxkern::parse_matmul_precision(mode, &p)) {
    throw py::value_error("unknown matmul precision '" + mode + "'; choose 'ieee' or 'tf32'");
  }
  fluxkern::set_matmul_precision(p);
}

void set_cuda_jet_kernel(const std::string& kernel) {
  fluxkern::CudaJetKernel k;
  if (!fluxkern::parse_cuda_jet_kernel(kernel, &k)) {
    throw py::value_error("unknown CUDA jet kernel '" + kernel + "'; choose 'gemm' or 'tile'");
  }
  fluxkern::set_cuda_jet_kernel(k);
}

void set_cpu_loss_kernel(const std::string& kernel) {
  fluxkern::CpuLossKernel k;
  if (!fluxkern::parse_cpu_loss_kernel(kernel, &k)) {
    throw py::value_error("unknown CPU loss kernel '" + kernel + "'; choose 'tile' or 'gemm'");
  }
  fluxkern::set_cpu_loss_kernel(k);
}

// Calls `fn` inside an engaged CublasTf32Scope and returns its result: lets the tests check, on
// any machine, that the scope turns torch's TF32 flag on and restores it (also on an exception).
py::object call_in_cublas_tf32_scope(const py::function& fn) {
  const fluxkern::CublasTf32Scope scope(true);
  return fn();
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fluxkern compiled extension: registers the fluxkern:: torch ops";
  m.def("build_info", &build_info,
        "Compiler, C++ standard, threads, parallel backend and CUDA architectures of this build.");
  m.def("set_cuda_matmul_precision", &set_cuda_matmul_precision, py::arg("mode"),
        "Precision of fluxkern's float32 CUDA GEMMs: 'ieee' (default) or 'tf32'.");
  m.def(
      "get_cuda_matmul_precision",
      [] { return std::string(fluxkern::matmul_precision_name(fluxkern::matmul_precision())); },
      "The precision set by set_cuda_matmul_precision.");
  m.def("set_cuda_jet_kernel", &set_cuda_jet_kernel, py::arg("kernel"),
        "The CUDA jet forward: 'gemm' (default) or 'tile' (fused per-tile kernel, widths <= 128).");
  m.def(
      "get_cuda_jet_kernel",
      [] { return std::string(fluxkern::cuda_jet_kernel_name(fluxkern::cuda_jet_kernel())); },
      "The kernel set by set_cuda_jet_kernel (initially 'tile' when FLUXKERN_CUDA_TILE=1).");
  m.def("set_cpu_loss_kernel", &set_cpu_loss_kernel, py::arg("kernel"),
        "The CPU block loss: 'tile' (default; fused per-tile kernel, widths <= 128) or 'gemm'.");
  m.def(
      "get_cpu_loss_kernel",
      [] { return std::string(fluxkern::cpu_loss_kernel_name(fluxkern::cpu_loss_kernel())); },
      "The kernel set by set_cpu_loss_kernel (initially 'gemm' when FLUXKERN_CPU_TILE=0).");
  m.def("_call_in_cublas_tf32_scope", &call_in_cublas_tf32_scope, py::arg("fn"),
        "Test hook: fn() inside the scope that fluxkern's TF32 GEMMs run in.");
}
