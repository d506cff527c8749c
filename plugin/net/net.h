// The net plugin, one implementation per entry point against the v11 table (NCCL_ABI.md §2.3).
// Each returns Status (or throws xsite::Error); net_tables.cc runs them inside the guard and
// exports them as ncclNetPlugin_v11, with v10/v9/v8 as thin shims.
#pragma once

#include "plugin/abi/net_v11.h"
#include "util/status.h"

namespace xsite::plugin::net {

inline constexpr const char* kNetName = "xsite";  // what NCCL_NET is compared against

Status init(void** ctx, uint64_t commId, const ncclNetCommConfig_v11_t* config,
            ncclDebugLogger_t logger);
Status devices(int* ndev);
Status getProperties(int dev, ncclNetProperties_v11_t* props);
Status listen(void* ctx, int dev, void* handle, void** listenComm);
Status connect(void* ctx, int dev, void* handle, void** sendComm);
Status accept(void* listenComm, void** recvComm);
Status regMr(void* comm, void* data, size_t size, int type, void** mhandle);
Status deregMr(void* comm, void* mhandle);
Status isend(void* sendComm, void* data, size_t size, int tag, void** request);
Status irecv(void* recvComm, int n, void** data, const size_t* sizes, const int* tags,
             void** request);
Status iflush(void* recvComm, void** request);
Status test(void* request, int* done, int* sizes);
Status closeSend(void* sendComm);
Status closeRecv(void* recvComm);
Status closeListen(void* listenComm);
Status finalize(void* ctx);

}  // namespace xsite::plugin::net
