// CollNet: the CollNet ranks of one NCCL communicator (one rank per node, NCCL_ABI.md §3.2) form
// an xsite communicator, and iallreduce runs the library's hierarchical all-reduce over them
// (site and cross-site stages, the configured codec and error feedback), bit-identical on every
// rank. One implementation per entry point against the v11 table (NCCL_ABI.md §3.1); each
// returns Status (or throws xsite::Error); collnet_tables.cc runs them inside the guard and
// exports ncclCollNetPlugin_v11 with v10/v9/v8 as thin shims.
//
// Operations run asynchronously on one worker thread per collComm, in posting order (every rank
// posts the same operations in the same order, which NCCL guarantees); test() reports completion.
#pragma once

#include "plugin/abi/net_v11.h"
#include "util/status.h"

namespace xsite::plugin::collnet {

inline constexpr const char* kCollNetName = "xsite";
// Operations in flight per collComm; one more returns a NULL request (NCCL retries).
inline constexpr int kMaxRequests = 32;

Status init(void** ctx, uint64_t commId, ncclDebugLogger_t logger);
Status devices(int* ndev);
Status getProperties(int dev, ncclNetProperties_v11_t* props);
Status listen(void* ctx, int dev, void* handle, void** listenComm);
Status connect(void* handles[], int nranks, int rank, void* listenComm, void** collComm);
Status reduceSupport(ncclDataType_t type, ncclRedOp_t op, int* supported);
Status regMr(void* collComm, void* data, size_t size, int type, void** mhandle);
Status deregMr(void* collComm, void* mhandle);
Status iallreduce(void* collComm, void* send, void* recv, size_t count, ncclDataType_t type,
                  ncclRedOp_t op, void** request);
Status iallgather(void* collComm, void* send, int nRecvParts, const ncclNetSGE_v11_t* recvParts,
                  size_t bytesPerRank, size_t windowOffset, size_t windowBytes, void** request);
Status ireducescatter(void* collComm, int nSendParts, const ncclNetSGE_v11_t* sendParts, void* recv,
                      size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                      ncclDataType_t type, ncclRedOp_t op, void** request);
Status iflush(void* collComm, void** request);
Status test(void* request, int* done, int* size);
Status closeColl(void* collComm);
Status closeListen(void* listenComm);
Status finalize(void* ctx);

}  // namespace xsite::plugin::collnet
