#include "kernels/jacobian_cpu.h"

namespace fluxkern {

template <typename T>
void residual_jacobian_cpu(const JacobianNet<T>& net, const JacobianBlock<T>& block,
                           const JacobianPlan& plan, int64_t n0, int64_t n1, T* scratch) {
  for (int64_t p = n0; p < n1; ++p) jacobian_point(net, block, plan, p, scratch);
}

template void residual_jacobian_cpu<float>(const JacobianNet<float>&, const JacobianBlock<float>&,
                                           const JacobianPlan&, int64_t, int64_t, float*);
template void residual_jacobian_cpu<double>(const JacobianNet<double>&,
                                            const JacobianBlock<double>&, const JacobianPlan&,
                                            int64_t, int64_t, double*);

}  // namespace fluxkern
