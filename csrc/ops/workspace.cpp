#include "ops/workspace.h"

#include <mutex>
#include <vector>

namespace fluxkern {
namespace {

constexpr size_t kMaxPooled = 8;
// Below this size the system allocator reuses memory well; pooling buys nothing.
constexpr int64_t kMinPooledBytes = 1 << 20;

std::mutex pool_mutex;
std::vector<at::Tensor> pool;  // 1-D buffers

bool is_free(const at::Tensor& t) { return t.storage().use_count() == 1; }

}  // namespace

at::Tensor pooled_empty(int64_t numel, const at::TensorOptions& options) {
  const int64_t bytes = numel * static_cast<int64_t>(options.dtype().itemsize());
  if (!options.device().is_cpu() || bytes < kMinPooledBytes) return at::empty({numel}, options);
  std::lock_guard<std::mutex> lock(pool_mutex);
  at::Tensor* best = nullptr;
  for (at::Tensor& t : pool) {
    if (t.scalar_type() == options.dtype().toScalarType() && t.numel() >= numel && is_free(t) &&
        (best == nullptr || t.numel() < best->numel())) {
      best = &t;
    }
  }
  if (best != nullptr) return best->narrow(0, 0, numel);
  // Make room: drop free buffers, smallest first, until the pool has space.
  while (pool.size() >= kMaxPooled) {
    auto victim = pool.end();
    for (auto it = pool.begin(); it != pool.end(); ++it) {
      if (is_free(*it) && (victim == pool.end() || it->numel() < victim->numel())) victim = it;
    }
    if (victim == pool.end()) return at::empty({numel}, options);  // all in use: do not pool
    pool.erase(victim);
  }
  pool.push_back(at::empty({numel}, options));
  return pool.back().narrow(0, 0, numel);
}

}  // namespace fluxkern
