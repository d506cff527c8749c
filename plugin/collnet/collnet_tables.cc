// The exported CollNet tables: ncclCollNetPlugin_v11 over the one implementation (collnet.h),
// each entry point inside the guard; v10, v9 and v8 as thin shims over the v11 entry points.
#include <cstddef>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/net_v8.h"
#include "plugin/abi/net_v9.h"
#include "plugin/collnet/collnet.h"
#include "plugin/common/export.h"
#include "plugin/common/guard.h"
#include "plugin/common/properties.h"

namespace xsite::plugin::collnet {
namespace {

// ---- v11: the implementation, guarded ---------------------------------------------------

ncclResult_t v11Init(void** ctx, uint64_t commId, ncclDebugLogger_t logger) noexcept {
  if (ctx != nullptr) *ctx = nullptr;
  return guard("collnet init", [&] { return init(ctx, commId, logger); });
}
ncclResult_t v11Devices(int* ndev) noexcept {
  return guard("collnet devices", [&] { return devices(ndev); });
}
ncclResult_t v11GetProperties(int dev, ncclNetProperties_v11_t* props) noexcept {
  return guard("collnet getProperties", [&] { return getProperties(dev, props); });
}
ncclResult_t v11Listen(void* ctx, int dev, void* handle, void** listenComm) noexcept {
  return guard("collnet listen", [&] { return listen(ctx, dev, handle, listenComm); });
}
ncclResult_t v11Connect(void* handles[], int nranks, int rank, void* listenComm,
                        void** collComm) noexcept {
  if (collComm != nullptr) *collComm = nullptr;
  return guard("collnet connect",
               [&] { return connect(handles, nranks, rank, listenComm, collComm); });
}
ncclResult_t v11ReduceSupport(ncclDataType_t type, ncclRedOp_t op, int* supported) noexcept {
  return guard("collnet reduceSupport", [&] { return reduceSupport(type, op, supported); });
}
ncclResult_t v11RegMr(void* comm, void* data, size_t size, int type, void** mhandle) noexcept {
  return guard("collnet regMr", [&] { return regMr(comm, data, size, type, mhandle); });
}
ncclResult_t v11DeregMr(void* comm, void* mhandle) noexcept {
  return guard("collnet deregMr", [&] { return deregMr(comm, mhandle); });
}
ncclResult_t v11Iallreduce(void* comm, void* send, void* recv, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, void* /*sendMh*/, void* /*recvMh*/,
                           void** request) noexcept {
  if (request != nullptr) *request = nullptr;
  return guard("collnet iallreduce",
               [&] { return iallreduce(comm, send, recv, count, type, op, request); });
}
ncclResult_t v11Iallgather(void* comm, void* send, int nParts, ncclNetSGE_v11_t* parts,
                           size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                           void* /*sendMh*/, void** request) noexcept {
  if (request != nullptr) *request = nullptr;
  return guard("collnet iallgather", [&] {
    return iallgather(comm, send, nParts, parts, bytesPerRank, windowOffset, windowBytes, request);
  });
}
ncclResult_t v11Ireducescatter(void* comm, int nParts, ncclNetSGE_v11_t* parts, void* recv,
                               size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                               ncclDataType_t type, ncclRedOp_t op, void* /*recvMh*/,
                               void** request) noexcept {
  if (request != nullptr) *request = nullptr;
  return guard("collnet ireducescatter", [&] {
    return ireducescatter(comm, nParts, parts, recv, bytesPerRank, windowOffset, windowBytes, type,
                          op, request);
  });
}
ncclResult_t v11Iflush(void* comm, void* /*data*/, int /*size*/, void* /*mhandle*/,
                       void** request) noexcept {
  return guard("collnet iflush", [&] { return iflush(comm, request); });
}
ncclResult_t v11Test(void* request, int* done, int* size) noexcept {
  return guard("collnet test", [&] { return test(request, done, size); });
}
ncclResult_t v11CloseColl(void* comm) noexcept {
  return guard("collnet closeColl", [&] { return closeColl(comm); });
}
ncclResult_t v11CloseListen(void* comm) noexcept {
  return guard("collnet closeListen", [&] { return closeListen(comm); });
}
ncclResult_t v11Finalize(void* ctx) noexcept {
  return guard("collnet finalize", [&] { return finalize(ctx); });
}

// ---- v10/v9/v8: one process-wide context (these versions init once, without a context) ----

void* gLegacyCtx = nullptr;

ncclResult_t legacyInit(ncclDebugLogger_t logger) noexcept {
  if (gLegacyCtx != nullptr) return ncclSuccess;  // NCCL's shims call init once; be idempotent
  return v11Init(&gLegacyCtx, 0, logger);
}
ncclResult_t v10GetProperties(int dev, ncclNetProperties_v10_t* props) noexcept {
  ncclNetProperties_v11_t p;
  ncclResult_t r = v11GetProperties(dev, &p);
  if (r == ncclSuccess) toV10(p, props);
  return r;
}
ncclResult_t v10Listen(int dev, void* handle, void** listenComm) noexcept {
  return v11Listen(gLegacyCtx, dev, handle, listenComm);
}
ncclResult_t v8GetProperties(int dev, ncclNetProperties_v8_t* props) noexcept {
  ncclNetProperties_v11_t p;
  ncclResult_t r = v11GetProperties(dev, &p);
  if (r == ncclSuccess) toV8(p, props);
  return r;
}
ncclResult_t v8Iallreduce(void* comm, void* send, void* recv, int count, ncclDataType_t type,
                          ncclRedOp_t op, void* sendMh, void* recvMh, void** request) noexcept {
  if (count < 0) {
    if (request != nullptr) *request = nullptr;
    return report("collnet iallreduce", ErrorCategory::kInternal, "negative count");
  }
  return v11Iallreduce(comm, send, recv, static_cast<size_t>(count), type, op, sendMh, recvMh,
                       request);
}
// v8's SGE has an int size: widen into v11's (NCCL passes one part; a few are allowed).
constexpr int kMaxParts = 16;
bool widen(int n, const ncclNetSGE_v8_t* in, ncclNetSGE_v11_t* out) {
  if (n < 1 || n > kMaxParts || in == nullptr) return false;
  for (int i = 0; i < n; ++i) {
    if (in[i].size < 0) return false;
    out[i] = {in[i].mhandle, in[i].address, static_cast<size_t>(in[i].size)};
  }
  return true;
}
ncclResult_t v8Iallgather(void* comm, void* send, int nParts, ncclNetSGE_v8_t* parts,
                          size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                          void* sendMh, void** request) noexcept {
  ncclNetSGE_v11_t wide[kMaxParts];
  if (!widen(nParts, parts, wide)) {
    if (request != nullptr) *request = nullptr;
    return report("collnet iallgather", ErrorCategory::kInvalidUsage,
                  "receive parts: 1..16 parts of non-negative size");
  }
  return v11Iallgather(comm, send, nParts, wide, bytesPerRank, windowOffset, windowBytes, sendMh,
                       request);
}
ncclResult_t v8Ireducescatter(void* comm, int nParts, ncclNetSGE_v8_t* parts, void* recv,
                              size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                              ncclDataType_t type, ncclRedOp_t op, void* recvMh,
                              void** request) noexcept {
  ncclNetSGE_v11_t wide[kMaxParts];
  if (!widen(nParts, parts, wide)) {
    if (request != nullptr) *request = nullptr;
    return report("collnet ireducescatter", ErrorCategory::kInvalidUsage,
                  "send parts: 1..16 parts of non-negative size");
  }
  return v11Ireducescatter(comm, nParts, wide, recv, bytesPerRank, windowOffset, windowBytes, type,
                           op, recvMh, request);
}

}  // namespace
}  // namespace xsite::plugin::collnet

using namespace xsite::plugin::collnet;  // NOLINT: the tables below name the shims

extern "C" {

XSITE_EXPORT ncclCollNet_v11_t ncclCollNetPlugin_v11 = {
    kCollNetName,      v11Init,        v11Devices,
    v11GetProperties,  v11Listen,      v11Connect,
    v11ReduceSupport,  v11RegMr,       nullptr /*regMrDmaBuf*/,
    v11DeregMr,        v11Iallreduce,  v11Iallgather,
    v11Ireducescatter, v11Iflush,      v11Test,
    v11CloseColl,      v11CloseListen, nullptr /*makeVDevice*/,
    v11Finalize};

XSITE_EXPORT ncclCollNet_v10_t ncclCollNetPlugin_v10 = {
    kCollNetName,      legacyInit, v11Devices, v10GetProperties, v10Listen,      v11Connect,
    v11ReduceSupport,  v11RegMr,   nullptr,    v11DeregMr,       v11Iallreduce,  v11Iallgather,
    v11Ireducescatter, v11Iflush,  v11Test,    v11CloseColl,     v11CloseListen, nullptr};

XSITE_EXPORT ncclCollNet_v9_t ncclCollNetPlugin_v9 = {
    kCollNetName,      legacyInit, v11Devices, v10GetProperties, v10Listen,      v11Connect,
    v11ReduceSupport,  v11RegMr,   nullptr,    v11DeregMr,       v11Iallreduce,  v11Iallgather,
    v11Ireducescatter, v11Iflush,  v11Test,    v11CloseColl,     v11CloseListen, nullptr};

XSITE_EXPORT ncclCollNet_v8_t ncclCollNetPlugin_v8 = {
    kCollNetName,     legacyInit, v11Devices, v8GetProperties, v10Listen,     v11Connect,
    v11ReduceSupport, v11RegMr,   nullptr,    v11DeregMr,      v8Iallreduce,  v8Iallgather,
    v8Ireducescatter, v11Iflush,  v11Test,    v11CloseColl,    v11CloseListen};

}  // extern "C"

static_assert(sizeof(ncclCollNet_v11_t) == 19 * sizeof(void*), "collnet v11: 19 members");
static_assert(sizeof(ncclCollNet_v10_t) == 18 * sizeof(void*), "collnet v10: 18 members");
static_assert(sizeof(ncclCollNet_v8_t) == 17 * sizeof(void*), "collnet v8: 17 members");
