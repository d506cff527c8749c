#include "plugin/common/host_memory.h"

#include <cstdint>
#include <string>

#include "plugin/abi/common.h"

namespace xsite::plugin {
namespace {

struct MemoryRegion {
  static constexpr uint64_t kMagic = 0x58534d52ull;  // "XSMR"
  uint64_t magic = kMagic;
  void* data;
  size_t size;
};

}  // namespace

Status registerHostMemory(void* data, size_t size, int type, void** mhandle, const char* what) {
  *mhandle = nullptr;
  if (type != NCCL_PTR_HOST)
    return Status(ErrorCategory::kInvalidUsage,
                  std::string(what) + " of pointer type " + std::to_string(type) +
                      ": xsite reports ptrSupport HOST only (no GPUDirect yet)");
  *mhandle = new MemoryRegion{MemoryRegion::kMagic, data, size};
  return Status::ok();
}

Status deregisterHostMemory(void* mhandle, const char* what) {
  auto* mr = static_cast<MemoryRegion*>(mhandle);
  if (mr == nullptr || mr->magic != MemoryRegion::kMagic)
    return Status(ErrorCategory::kInternal, std::string(what) + " of a handle regMr did not return");
  mr->magic = 0;
  delete mr;
  return Status::ok();
}

}  // namespace xsite::plugin
