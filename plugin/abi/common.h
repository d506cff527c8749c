// The NCCL 2.28 plugin ABI, declared by xsite from the facts in NCCL_ABI.md (no NCCL header text):
// result codes, the logger and profiler callback types, pointer kinds and the limits NCCL holds a
// plugin to. C-compatible, so tests/c_abi compiles it as C99. Names follow NCCL's spelling where
// NCCL reads them by value (enums, struct layouts); the layouts are what matter, not the names.
#ifndef XSITE_PLUGIN_ABI_COMMON_H
#define XSITE_PLUGIN_ABI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ncclResult_t (nccl.h): the only thing that crosses the ABI back to NCCL. */
typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;

/* Logger levels and subsystem bits. */
typedef enum {
  NCCL_LOG_NONE = 0,
  NCCL_LOG_VERSION = 1,
  NCCL_LOG_WARN = 2,
  NCCL_LOG_INFO = 3,
  NCCL_LOG_ABORT = 4,
  NCCL_LOG_TRACE = 5,
} ncclDebugLogLevel;

typedef enum {
  NCCL_INIT = 0x1,
  NCCL_COLL = 0x2,
  NCCL_P2P = 0x4,
  NCCL_SHM = 0x8,
  NCCL_NET = 0x10,
  NCCL_GRAPH = 0x20,
  NCCL_TUNING = 0x40,
  NCCL_ENV = 0x80,
  NCCL_ALLOC = 0x100,
  NCCL_CALL = 0x200,
  NCCL_PROXY = 0x400,
  NCCL_NVLS = 0x800,
  NCCL_BOOTSTRAP = 0x1000,
  NCCL_REG = 0x2000,
  NCCL_PROFILE = 0x4000,
  NCCL_RAS = 0x8000,
  NCCL_ALL = ~0,
} ncclDebugLogSubSys;

/* level, subsystem mask, file, line, printf format, arguments. */
typedef void (*ncclDebugLogger_t)(ncclDebugLogLevel level, unsigned long flags, const char* file,
                                  int line, const char* fmt, ...);

/* eHandle, type (0 start, 1 stop, 2 update, 3 update-and-stop), pHandle, pluginId, extData. */
typedef ncclResult_t (*ncclProfilerCallback_t)(void** eHandle, int type, void* pHandle,
                                               int64_t pluginId, void* extData);

/* Pointer kinds: ptrSupport bits and the `type` argument of regMr. */
#define NCCL_PTR_HOST 0x1
#define NCCL_PTR_CUDA 0x2
#define NCCL_PTR_DMABUF 0x4

#define NCCL_NET_HANDLE_MAXSIZE 128           /* the connect handle NCCL allocates and exchanges */
#define NCCL_NET_MAX_REQUESTS 32              /* in flight per comm (x maxRecvs on the send side) */
#define NCCL_NET_MAX_DEVS_PER_NIC 4           /* devices fused into one virtual NIC */
#define NCCL_MAX_NET_SIZE_BYTES (1ull << 40)  /* upper bound of maxP2pBytes / maxCollBytes */
#define NCCL_NET_OPTIONAL_RECV_COMPLETION 0x1 /* sentinel NCCL stores in *request before irecv */
#define NCCL_NET_TRAFFIC_CLASS_UNDEF (-1)

/* Device offload kinds; a host-driven plugin reports HOST with version 0. */
typedef enum {
  NCCL_NET_DEVICE_HOST = 0,
  NCCL_NET_DEVICE_UNPACK = 1,
  NCCL_NET_DEVICE_GIN_PROXY = 2,
  NCCL_NET_DEVICE_GIN_GDAKI = 3,
} ncclNetDeviceType;
#define NCCL_NET_DEVICE_INVALID_VERSION 0x0

/* Device handle offered on connect/accept (v7..v11); a HOST plugin ignores it. */
typedef struct {
  ncclNetDeviceType netDeviceType;
  int netDeviceVersion;
  void* handle;
  size_t size;
  int needsProxyProgress;
} ncclNetDeviceHandle_v11_t;
typedef ncclNetDeviceHandle_v11_t ncclNetDeviceHandle_v10_t;
typedef ncclNetDeviceHandle_v11_t ncclNetDeviceHandle_v9_t;
typedef ncclNetDeviceHandle_v11_t ncclNetDeviceHandle_v8_t;

/* Collective enums (NCCL 2.28 core values), used by CollNet and the tuner. NCCL may pass values
   outside the listed ones (a newer NCCL, a bad caller), which the plugin checks: in C++ these
   enums take int as their fixed underlying type, so that every int is a value they may hold (the
   same size and calling convention as C's enum, which is an int here). */
#ifdef __cplusplus
#define XSITE_ABI_OPEN_ENUM enum : int
#else
#define XSITE_ABI_OPEN_ENUM enum
#endif
typedef XSITE_ABI_OPEN_ENUM {
  ncclInt8 = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclFloat32 = 7,
  ncclFloat64 = 8,
  ncclBfloat16 = 9,
  ncclFloat8e4m3 = 10,
  ncclFloat8e5m2 = 11,
  ncclNumTypes = 12,
} ncclDataType_t;

typedef XSITE_ABI_OPEN_ENUM { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef XSITE_ABI_OPEN_ENUM {
  ncclFuncBroadcast = 0,
  ncclFuncReduce = 1,
  ncclFuncAllGather = 2,
  ncclFuncReduceScatter = 3,
  ncclFuncAllReduce = 4,
  ncclFuncSendRecv = 5,
  ncclFuncSend = 6,
  ncclFuncRecv = 7,
  ncclFuncAlltoAll = 8,
  ncclFuncScatter = 9,
  ncclFuncGather = 10,
} ncclFunc_t;
#define NCCL_NUM_FUNCTIONS 5 /* the tuner is asked about collTypes 0..4 only */

#define NCCL_ALGO_UNDEF (-1)
#define NCCL_ALGO_TREE 0
#define NCCL_ALGO_RING 1
#define NCCL_ALGO_COLLNET_DIRECT 2
#define NCCL_ALGO_COLLNET_CHAIN 3
#define NCCL_ALGO_NVLS 4
#define NCCL_ALGO_NVLS_TREE 5
#define NCCL_ALGO_PAT 6
#define NCCL_NUM_ALGORITHMS 7

#define NCCL_PROTO_UNDEF (-1)
#define NCCL_PROTO_LL 0
#define NCCL_PROTO_LL128 1
#define NCCL_PROTO_SIMPLE 2
#define NCCL_NUM_PROTOCOLS 3

#define NCCL_ALGO_PROTO_IGNORE (-1.0f) /* a cost-table entry that is not available */

#ifdef __cplusplus
}
#endif

#endif /* XSITE_PLUGIN_ABI_COMMON_H */
