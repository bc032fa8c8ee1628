// The Python module itself (pybind11) and its non-tensor helpers. Tensor ops are registered with
// the dispatcher in registration.cpp, not here.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#include <string>

#include "kernels/jet_cpu.h"

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

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fluxkern compiled extension: registers the fluxkern:: torch ops";
  m.def("build_info", &build_info,
        "Compiler, C++ standard, threads, parallel backend and CUDA architectures of this build.");
}
