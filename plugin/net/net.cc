#include "plugin/net/net.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "plugin/common/guard.h"
#include "plugin/common/host_memory.h"
#include "plugin/net/comm.h"
#include "plugin/net/devices.h"
#include "transport/transport.h"
#include "util/log.h"
#include "util/params.h"

namespace xsite::plugin::net {
namespace {

// Per-communicator context (v11 init/finalize). The traffic class is kept for a later version
// (IP_TOS); the TCP transport does not use it yet.
struct Context {
  static constexpr uint64_t kMagic = 0x5853435458ull;
  uint64_t magic = kMagic;
  uint64_t commId = 0;
  int trafficClass = NCCL_NET_TRAFFIC_CLASS_UNDEF;
};

// Process-wide state: discovered once, read by every proxy thread afterwards.
struct Global {
  std::mutex mu;
  bool ready = false;
  std::vector<Device> devices;
  LinkSettings settings;
  std::atomic<int> contexts{0};
};
Global& global() {
  static Global* g = new Global;  // never destroyed: proxy threads may outlive static teardown
  return *g;
}

const Global& ready() {
  Global& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.ready) throw Error(ErrorCategory::kInternal, "net plugin used before a successful init");
  return g;
}

}  // namespace

Status init(void** ctx, uint64_t commId, const ncclNetCommConfig_v11_t* config,
            ncclDebugLogger_t logger) {
  *ctx = nullptr;  // 2.28.9 calls finalize even when init failed
  installLogger(logger);
  Global& g = global();
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (!g.ready) {
      const params::Params& p = params::Params::global();  // throws kInvalidUsage on bad values
      LinkSettings s;
      s.site = p.isSet(params::Id::kSite) ? static_cast<int>(p.integer(params::Id::kSite)) : 0;
      s.fabric = transport::fabricOptionsFromParams(p);
      // The library's reading of the transports (its errors too); the registry bounds the rest.
      const bool wan = transport::otherSiteBackend(p) == transport::Backend::kWan;
      const int streams = s.fabric.wan.streams;
      s.wanStreams = wan ? streams : 0;
      s.siteUcx = sameSiteOverUcx(p);
      s.fabric.secret = bootstrap::JobSecret::fromParams(p);
      if (s.fabric.wan.tls)  // over WAN streams (otherSiteBackend says so); needs the secret
        s.wanTls = std::make_shared<const transport::wan::TlsContext>(s.fabric.secret);
      s.timeout = params::fromSeconds(p.real(params::Id::kTimeout));
      s.wanSizing = transport::wan::wanSizing(s.fabric.wan.rateMbit, s.fabric.wan.latencyUs,
                                              streams, s.fabric.wan.windowBytes);
      const auto codec = parseCodec(p.string(params::Id::kNetCodec));
      if (!codec || compress::isLossy(*codec))
        throw Error(ErrorCategory::kInvalidUsage,
                    "XSITE_NET_CODEC='" + p.string(params::Id::kNetCodec) +
                        "' is not none, lz4 or zstd (the net path sees bytes, never data types, "
                        "so only lossless codecs apply; lossy ones belong to CollNet: XSITE_CODEC)");
      s.wanCodec = *codec;
      g.devices = processDevices();
      g.settings = s;
      g.ready = true;
      if (s.wanStreams > 0)
        XSITE_INFO(kInit,
                   "net plugin '%s': %zu device(s), site %d; %s for same-site peers, %d WAN "
                   "streams%s for cross-site peers (socket buffers %d bytes, window %zu bytes, "
                   "codec %s)",
                   kNetName, g.devices.size(), s.site, s.siteUcx ? "UCX" : "TCP", s.wanStreams,
                   s.wanTls ? " (TLS)" : "", s.wanSizing.socketBytes, s.wanSizing.windowBytes,
                   std::string(codecName(s.wanCodec)).c_str());
      else
        XSITE_INFO(kInit,
                   "net plugin '%s': %zu device(s), site %d, %s for same-site peers, TCP for "
                   "cross-site peers (XSITE_WAN_TRANSPORT=tcp)",
                   kNetName, g.devices.size(), s.site, s.siteUcx ? "UCX" : "TCP");
    }
  }
  auto c = std::make_unique<Context>();
  c->commId = commId;
  if (config != nullptr) c->trafficClass = config->trafficClass;
  *ctx = c.release();
  g.contexts.fetch_add(1);
  return Status::ok();
}

Status devices(int* ndev) {
  *ndev = static_cast<int>(ready().devices.size());
  return Status::ok();
}

Status getProperties(int dev, ncclNetProperties_v11_t* props) {
  fillProperties(deviceAt(ready().devices, dev, "net"), dev, props);
  return Status::ok();
}

Status listen(void* /*ctx*/, int dev, void* handle, void** listenComm) {
  *listenComm = nullptr;
  ListenComm* l = nullptr;
  const Global& g = ready();
  XSITE_RETURN_IF_ERROR(net::listen(deviceAt(g.devices, dev, "net"), g.settings,
                                    static_cast<ConnectHandle*>(handle), &l));
  *listenComm = l;
  return Status::ok();
}

Status connect(void* /*ctx*/, int dev, void* handle, void** sendComm) {
  *sendComm = nullptr;
  // TCP: the route decides the source interface; UCX: the device's worker.
  const Global& g = ready();
  SendComm* s = nullptr;
  XSITE_RETURN_IF_ERROR(connectStep(deviceAt(g.devices, dev, "net"), g.settings,
                                    static_cast<ConnectHandle*>(handle), &s));
  *sendComm = s;
  return Status::ok();
}

Status accept(void* listenComm, void** recvComm) {
  *recvComm = nullptr;
  if (listenComm == nullptr)
    return Status(ErrorCategory::kInternal, "accept on a null listen comm");
  RecvComm* r = nullptr;
  XSITE_RETURN_IF_ERROR(static_cast<ListenComm*>(listenComm)->acceptStep(&r));
  *recvComm = r;
  return Status::ok();
}

Status regMr(void* comm, void* data, size_t size, int type, void** mhandle) {
  *mhandle = nullptr;
  if (comm == nullptr) return Status(ErrorCategory::kInternal, "regMr on a null comm");
  return registerHostMemory(data, size, type, mhandle, "net regMr");
}

Status deregMr(void* /*comm*/, void* mhandle) { return deregisterHostMemory(mhandle, "net deregMr"); }

Status isend(void* sendComm, void* data, size_t size, int tag, void** request) {
  *request = nullptr;
  if (sendComm == nullptr) return Status(ErrorCategory::kInternal, "isend on a null comm");
  return static_cast<SendComm*>(sendComm)->post(data, size, tag, request);
}

Status irecv(void* recvComm, int n, void** data, const size_t* sizes, const int* tags,
             void** request) {
  // *request may hold NCCL_NET_OPTIONAL_RECV_COMPLETION: a value, never dereferenced.
  if (recvComm == nullptr) {
    *request = nullptr;
    return Status(ErrorCategory::kInternal, "irecv on a null comm");
  }
  return static_cast<RecvComm*>(recvComm)->post(n, data, sizes, tags, request);
}

Status iflush(void* /*recvComm*/, void** request) {
  *request = nullptr;  // host memory: nothing to flush, nothing to wait for
  return Status::ok();
}

Status test(void* request, int* done, int* sizes) {
  *done = 0;
  auto* r = static_cast<Request*>(request);
  if (r == nullptr || r->comm == nullptr)
    return Status(ErrorCategory::kInternal, "test of a null request");
  return r->comm->test(r, done, sizes);
}

Status closeSend(void* sendComm) {
  delete static_cast<SendComm*>(sendComm);
  return Status::ok();
}

Status closeRecv(void* recvComm) {
  delete static_cast<RecvComm*>(recvComm);
  return Status::ok();
}

Status closeListen(void* listenComm) {
  delete static_cast<ListenComm*>(listenComm);
  return Status::ok();
}

Status finalize(void* ctx) {
  if (ctx == nullptr) return Status::ok();  // init failed or never ran (NCCL 2.28.9 bug 1)
  auto* c = static_cast<Context*>(ctx);
  if (c->magic != Context::kMagic)
    return Status(ErrorCategory::kInternal, "finalize of a context init did not return");
  c->magic = 0;
  delete c;
  global().contexts.fetch_sub(1);
  return Status::ok();
}

}  // namespace xsite::plugin::net
