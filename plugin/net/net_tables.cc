// The exported net tables: ncclNetPlugin_v11 over the one implementation (net.h), each entry
// point inside the guard; v10, v9 and v8 as thin shims over the v11 entry points. The CollNet
// tables are in plugin/collnet/collnet_tables.cc.
#include <cstddef>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/net_v8.h"
#include "plugin/abi/net_v9.h"
#include "plugin/common/export.h"
#include "plugin/common/guard.h"
#include "plugin/common/properties.h"
#include "plugin/net/comm.h"
#include "plugin/net/devices.h"
#include "plugin/net/net.h"

namespace xsite::plugin::net {
namespace {

// ---- v11: the implementation, guarded ---------------------------------------------------

ncclResult_t v11Init(void** ctx, uint64_t commId, ncclNetCommConfig_v11_t* config,
                     ncclDebugLogger_t logger, ncclProfilerCallback_t /*profiler*/) noexcept {
  if (ctx != nullptr) *ctx = nullptr;
  return guard("net init", [&] { return init(ctx, commId, config, logger); });
}
ncclResult_t v11Devices(int* ndev) noexcept {
  return guard("net devices", [&] { return devices(ndev); });
}
ncclResult_t v11GetProperties(int dev, ncclNetProperties_v11_t* props) noexcept {
  return guard("net getProperties", [&] { return getProperties(dev, props); });
}
ncclResult_t v11Listen(void* ctx, int dev, void* handle, void** listenComm) noexcept {
  return guard("net listen", [&] { return listen(ctx, dev, handle, listenComm); });
}
ncclResult_t v11Connect(void* ctx, int dev, void* handle, void** sendComm,
                        ncclNetDeviceHandle_v11_t** /*devHandle: HOST plugin*/) noexcept {
  return guard("net connect", [&] { return connect(ctx, dev, handle, sendComm); });
}
ncclResult_t v11Accept(void* listenComm, void** recvComm,
                       ncclNetDeviceHandle_v11_t** /*dev*/) noexcept {
  return guard("net accept", [&] { return accept(listenComm, recvComm); });
}
ncclResult_t v11RegMr(void* comm, void* data, size_t size, int type, void** mhandle) noexcept {
  return guard("net regMr", [&] { return regMr(comm, data, size, type, mhandle); });
}
ncclResult_t v11DeregMr(void* comm, void* mhandle) noexcept {
  return guard("net deregMr", [&] { return deregMr(comm, mhandle); });
}
ncclResult_t v11Isend(void* sendComm, void* data, size_t size, int tag, void* /*mhandle*/,
                      void* /*phandle*/, void** request) noexcept {
  return guard("net isend", [&] { return isend(sendComm, data, size, tag, request); });
}
ncclResult_t v11Irecv(void* recvComm, int n, void** data, size_t* sizes, int* tags,
                      void** /*mhandles*/, void** /*phandles*/, void** request) noexcept {
  return guard("net irecv", [&] { return irecv(recvComm, n, data, sizes, tags, request); });
}
ncclResult_t v11Iflush(void* recvComm, int /*n*/, void** /*data*/, int* /*sizes*/,
                       void** /*mhandles*/, void** request) noexcept {
  return guard("net iflush", [&] { return iflush(recvComm, request); });
}
ncclResult_t v11Test(void* request, int* done, int* sizes) noexcept {
  return guard("net test", [&] { return test(request, done, sizes); });
}
ncclResult_t v11CloseSend(void* comm) noexcept {
  return guard("net closeSend", [&] { return closeSend(comm); });
}
ncclResult_t v11CloseRecv(void* comm) noexcept {
  return guard("net closeRecv", [&] { return closeRecv(comm); });
}
ncclResult_t v11CloseListen(void* comm) noexcept {
  return guard("net closeListen", [&] { return closeListen(comm); });
}
ncclResult_t v11Finalize(void* ctx) noexcept {
  return guard("net finalize", [&] { return finalize(ctx); });
}

// ---- v10/v9/v8: one process-wide context (these versions init once, without a context) ----

void* gLegacyCtx = nullptr;

ncclResult_t legacyInit(ncclDebugLogger_t logger) noexcept {
  if (gLegacyCtx != nullptr) return ncclSuccess;  // NCCL's shims call init once; be idempotent
  return v11Init(&gLegacyCtx, 0, nullptr, logger, nullptr);
}
ncclResult_t v10Init(ncclDebugLogger_t logger, ncclProfilerCallback_t /*profiler*/) noexcept {
  return legacyInit(logger);
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
ncclResult_t v10Connect(int dev, ncclNetCommConfig_v10_t* /*config*/, void* handle, void** sendComm,
                        ncclNetDeviceHandle_v10_t** devHandle) noexcept {
  return v11Connect(gLegacyCtx, dev, handle, sendComm, devHandle);
}
ncclResult_t v9Connect(int dev, void* handle, void** sendComm,
                       ncclNetDeviceHandle_v9_t** devHandle) noexcept {
  return v11Connect(gLegacyCtx, dev, handle, sendComm, devHandle);
}
ncclResult_t v9Isend(void* sendComm, void* data, size_t size, int tag, void* mhandle,
                     void** request) noexcept {
  return v11Isend(sendComm, data, size, tag, mhandle, nullptr, request);
}
ncclResult_t v9Irecv(void* recvComm, int n, void** data, size_t* sizes, int* tags, void** mhandles,
                     void** request) noexcept {
  return v11Irecv(recvComm, n, data, sizes, tags, mhandles, nullptr, request);
}
ncclResult_t v8GetProperties(int dev, ncclNetProperties_v8_t* props) noexcept {
  ncclNetProperties_v11_t p;
  ncclResult_t r = v11GetProperties(dev, &p);
  if (r == ncclSuccess) toV8(p, props);
  return r;
}
ncclResult_t v8Isend(void* sendComm, void* data, int size, int tag, void* mhandle,
                     void** request) noexcept {
  if (size < 0) return report("net isend", ErrorCategory::kInternal, "negative size");
  return v11Isend(sendComm, data, static_cast<size_t>(size), tag, mhandle, nullptr, request);
}
ncclResult_t v8Irecv(void* recvComm, int n, void** data, int* sizes, int* tags, void** mhandles,
                     void** request) noexcept {
  size_t wide[kMaxRecvs];
  if (n < 1 || n > kMaxRecvs) {
    *request = nullptr;
    return report("net irecv", ErrorCategory::kInternal, "buffer count outside 1..maxRecvs");
  }
  for (int i = 0; i < n; ++i) wide[i] = sizes[i] < 0 ? 0 : static_cast<size_t>(sizes[i]);
  return v11Irecv(recvComm, n, data, wide, tags, mhandles, nullptr, request);
}

}  // namespace
}  // namespace xsite::plugin::net

using namespace xsite::plugin::net;  // NOLINT: the tables below name the shims

extern "C" {

XSITE_EXPORT ncclNet_v11_t ncclNetPlugin_v11 = {kNetName,
                                                v11Init,
                                                v11Devices,
                                                v11GetProperties,
                                                v11Listen,
                                                v11Connect,
                                                v11Accept,
                                                v11RegMr,
                                                nullptr,
                                                v11DeregMr,
                                                v11Isend,
                                                v11Irecv,
                                                v11Iflush,
                                                v11Test,
                                                v11CloseSend,
                                                v11CloseRecv,
                                                v11CloseListen,
                                                nullptr /*getDeviceMr*/,
                                                nullptr /*irecvConsumed*/,
                                                nullptr /*makeVDevice*/,
                                                v11Finalize,
                                                nullptr /*setNetAttr: advisory*/};

XSITE_EXPORT ncclNet_v10_t ncclNetPlugin_v10 = {
    kNetName,     v10Init,      v11Devices,     v10GetProperties, v10Listen, v10Connect, v11Accept,
    v11RegMr,     nullptr,      v11DeregMr,     v11Isend,         v11Irecv,  v11Iflush,  v11Test,
    v11CloseSend, v11CloseRecv, v11CloseListen, nullptr,          nullptr,   nullptr};

XSITE_EXPORT ncclNet_v9_t ncclNetPlugin_v9 = {
    kNetName,     legacyInit,   v11Devices,     v10GetProperties, v10Listen, v9Connect, v11Accept,
    v11RegMr,     nullptr,      v11DeregMr,     v9Isend,          v9Irecv,   v11Iflush, v11Test,
    v11CloseSend, v11CloseRecv, v11CloseListen, nullptr,          nullptr,   nullptr};

XSITE_EXPORT ncclNet_v8_t ncclNetPlugin_v8 = {
    kNetName,     legacyInit,   v11Devices,     v8GetProperties, v10Listen, v9Connect, v11Accept,
    v11RegMr,     nullptr,      v11DeregMr,     v8Isend,         v8Irecv,   v11Iflush, v11Test,
    v11CloseSend, v11CloseRecv, v11CloseListen, nullptr,         nullptr};

}  // extern "C"

// The layouts NCCL reads: every member after `name` is one pointer.
static_assert(sizeof(ncclNet_v11_t) == 22 * sizeof(void*), "net v11: name + 21 entry points");
static_assert(sizeof(ncclNet_v10_t) == 20 * sizeof(void*), "net v10: name + 19 entry points");
static_assert(sizeof(ncclNet_v9_t) == 20 * sizeof(void*), "net v9: name + 19 entry points");
static_assert(sizeof(ncclNet_v8_t) == 19 * sizeof(void*), "net v8: name + 18 entry points");
static_assert(offsetof(ncclNetProperties_v10_t, vProps) == 64, "properties v10 layout (LP64)");
static_assert(offsetof(ncclNetProperties_v10_t, maxP2pBytes) == 88, "properties v10 layout (LP64)");
static_assert(sizeof(ncclNetProperties_v10_t) == 104, "properties v10 layout (LP64)");
static_assert(offsetof(ncclNetProperties_v11_t, maxMultiRequestSize) == 104, "v11 = v10 + one int");
static_assert(sizeof(ncclNetProperties_v8_t) == 64, "properties v8 layout (LP64)");
static_assert(kMaxRecvs * NCCL_NET_MAX_REQUESTS == kSendRequests, "send side: 32 x maxRecvs");
