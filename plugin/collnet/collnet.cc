#include "plugin/collnet/collnet.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "coll/bring_up.h"
#include "coll/collectives.h"
#include "coll/reduce.h"
#include "coll/settings.h"
#include "plugin/collnet/coll_comm.h"
#include "plugin/common/guard.h"
#include "plugin/common/host_memory.h"
#include "plugin/net/devices.h"
#include "topo/env_record.h"
#include "topo/topology.h"
#include "transport/fabric.h"
#include "util/log.h"
#include "util/params.h"
#include "util/socket.h"

namespace xsite::plugin::collnet {
namespace {

using params::Id;
using Ms = std::chrono::milliseconds;

struct Context {
  static constexpr uint64_t kMagic = 0x58534343ull;  // "XSCC"
  uint64_t magic = kMagic;
  uint64_t commId = 0;
};

// Process-wide: the devices (the net's list, same order, names and pciPaths: NCCL_ABI.md §3.3)
// and the settings, read once.
struct Global {
  std::mutex mu;
  bool ready = false;
  std::vector<net::Device> devices;
  int site = 0;
  coll::Settings settings;
  Ms bootstrapTimeout{120000};
  bootstrap::StoreLimits storeLimits;
  bootstrap::JobSecret secret;
  coll::LinkSetup links;  // fabric options but listenIp and job, and the backends
  uint64_t domainHash = 0;  // of this process's domain name (topo::recordFromParams)
};
Global& global() {
  static Global* g = new Global;  // never destroyed: proxy threads may outlive static teardown
  return *g;
}

const Global& ready() {
  Global& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.ready) throw Error(ErrorCategory::kInternal, "CollNet used before a successful init");
  return g;
}

const net::Device& deviceAt(int dev) { return net::deviceAt(ready().devices, dev, "CollNet"); }

void readSettings(Global& g, const params::Params& p) {
  g.site = p.isSet(Id::kSite) ? static_cast<int>(p.integer(Id::kSite)) : 0;
  Config overrides;
  overrides.algorithm = Algorithm::kHierarchical;  // CollNet always runs the hierarchical path
  g.settings = coll::settingsFromParams(p, overrides);
  g.bootstrapTimeout = params::fromSeconds(p.real(Id::kBootstrapTimeout));
  g.storeLimits = bootstrap::storeLimitsFromParams(p);
  g.secret = bootstrap::JobSecret::fromParams(p);
  g.links = coll::linkSetupFromParams(p);
  g.domainHash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : topo::recordFromParams(p, hostName()).domain) g.domainHash = (g.domainHash ^ c) * 1099511628211ull;
  g.links.fabric.prefix = "collnet";
  g.links.fabric.timeout = g.bootstrapTimeout;
}

struct ListenComm {
  static constexpr uint64_t kMagic = 0x5853434cull;  // "XSCL"
  uint64_t magic = kMagic;
  int dev = 0;
  std::string ip;
  std::unique_ptr<bootstrap::TcpStoreServer> server;  // used when this rank becomes rank 0
};

CollComm& commOf(void* collComm, const char* what) {
  auto* c = static_cast<CollComm*>(collComm);
  if (c == nullptr || c->magic != CollComm::kMagic)
    throw Error(ErrorCategory::kInternal, std::string(what) + " on a comm connect did not return");
  return *c;
}

int reportedBytes(size_t bytes) {
  return static_cast<int>(std::min<size_t>(bytes, INT_MAX));
}

}  // namespace

Status init(void** ctx, uint64_t commId, ncclDebugLogger_t logger) {
  *ctx = nullptr;  // 2.28.9 calls finalize even when init failed
  installLogger(logger);
  Global& g = global();
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (!g.ready) {
      const params::Params& p = params::Params::global();  // throws kInvalidUsage on bad values
      readSettings(g, p);
      g.devices = net::processDevices();
      g.ready = true;
      XSITE_INFO(kInit, "CollNet '%s': %zu device(s), site %d, hierarchical all-reduce, codec %s",
                 kCollNetName, g.devices.size(), g.site,
                 std::string(codecName(g.settings.codec)).c_str());
    }
  }
  auto c = std::make_unique<Context>();
  c->commId = commId;
  *ctx = c.release();
  return Status::ok();
}

Status devices(int* ndev) {
  *ndev = static_cast<int>(ready().devices.size());
  return Status::ok();
}

Status getProperties(int dev, ncclNetProperties_v11_t* props) {
  net::fillProperties(deviceAt(dev), dev, props);
  return Status::ok();
}

// Every rank starts a store server; the one of the rank NCCL numbers 0 in connect serves the
// group (the others stop theirs at closeListen).
Status listen(void* /*ctx*/, int dev, void* handle, void** listenComm) {
  *listenComm = nullptr;
  const net::Device& d = deviceAt(dev);
  auto l = std::make_unique<ListenComm>();
  l->dev = dev;
  l->ip = d.ip;
  l->server = std::make_unique<bootstrap::TcpStoreServer>(sockAddrOf(d.ip, 0), ready().storeLimits,
                                                         ready().secret);
  const SockAddr a = l->server->address();
  Handle h{};
  h.magic = Handle::kMagic;
  h.version = Handle::kVersion;
  h.store = a.wire();
  h.site = ready().site;
  h.domain = ready().domainHash;
  h.nonce = randomNonce();
  std::memset(handle, 0, NCCL_NET_HANDLE_MAXSIZE);
  std::memcpy(handle, &h, sizeof(h));
  *listenComm = l.release();
  return Status::ok();
}

// Collective and blocking: every rank of the group calls it with everyone's handle.
Status connect(void* handles[], int nranks, int rank, void* listenComm, void** collComm) {
  *collComm = nullptr;
  auto* l = static_cast<ListenComm*>(listenComm);
  if (l == nullptr || l->magic != ListenComm::kMagic)
    return Status(ErrorCategory::kInternal,
                  "CollNet connect on a listen comm listen did not return");
  if (nranks < 1 || rank < 0 || rank >= nranks || handles == nullptr)
    return Status(ErrorCategory::kInternal, "CollNet connect: rank " + std::to_string(rank) +
                                                " of " + std::to_string(nranks));
  const Global& g = ready();
  std::vector<Handle> hs(static_cast<size_t>(nranks));
  std::vector<topo::RankRecord> records;
  for (int r = 0; r < nranks; ++r) {
    if (handles[r] == nullptr)
      return Status(ErrorCategory::kInternal, "CollNet connect: null handle");
    std::memcpy(&hs[r], handles[r], sizeof(Handle));
    if (hs[r].magic != Handle::kMagic || hs[r].version != Handle::kVersion)
      return Status(ErrorCategory::kInvalidUsage,
                    "CollNet connect: rank " + std::to_string(r) +
                        "'s handle is not an xsite CollNet handle (mixed plugin versions?)");
    topo::RankRecord rec;
    rec.rank = r;
    rec.worldSize = nranks;
    rec.site = hs[r].site;
    // Ranks of one node (usually one per node, NCCL_ABI.md §3.2) share a domain: shared memory.
    char name[32];
    snprintf(name, sizeof name, "domain-%016llx", static_cast<unsigned long long>(hs[r].domain));
    rec.domain = name;
    rec.source = "CollNet handle";
    records.push_back(std::move(rec));
  }
  topo::Topology topology = topo::Topology::fromRecords(records);

  const SockAddr storeAddr = SockAddr::fromWire(hs[0].store);
  auto store = std::make_unique<bootstrap::TcpStore>(storeAddr, g.bootstrapTimeout, g.secret,
                                                     g.storeLimits.maxReplyBytes);
  // Every rank must run the same schedule (chunks, lanes, codec, ...): a disagreement is named.
  try {
    coll::agreeOnSchedule(*store, "collnet/schedule", rank, nranks, g.settings, g.links,
                          g.bootstrapTimeout);
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kInvalidUsage) throw;
    // Every rank sees the disagreement; rank 0 keeps serving the store until the others have
    // read what they need to say so too (bounded), instead of leaving them a lost store.
    if (rank != 0) {
      store->set("collnet/refused/" + std::to_string(rank), "");
    } else {
      std::vector<std::string> keys, out;
      for (int r = 1; r < nranks; ++r) keys.push_back("collnet/refused/" + std::to_string(r));
      store->waitFor(keys, std::chrono::seconds(10), out);
    }
    throw;
  }

  transport::FabricOptions fo = g.links.fabric;
  fo.listenIp = l->ip;
  fo.job = hs[0].nonce;
  fo.secret = g.secret;
  if (rank == 0)
    XSITE_INFO(kInit, "CollNet group of %d: %s; transports: %s; codec %s", nranks,
               topology.describe().c_str(), coll::describe(g.links.backends).c_str(),
               std::string(codecName(g.settings.codec)).c_str());
  auto ctx = coll::connectContext(rank, std::move(topology), *store, fo, g.links.backends, g.settings);
  // Rank 0 keeps its store server for the comm's lifetime: peers may still read from it.
  std::unique_ptr<bootstrap::TcpStoreServer> server;
  if (rank == 0) server = std::move(l->server);
  *collComm = new CollComm(std::move(server), std::move(store), std::move(ctx));
  return Status::ok();
}

Status reduceSupport(ncclDataType_t type, ncclRedOp_t op, int* supported) {
  const int t = static_cast<int>(type), o = static_cast<int>(op);
  *supported = t >= 0 && t < kNumDataTypes && o >= 0 && o < kNumReduceOps &&
               isReducible(static_cast<DataType>(t));
  return Status::ok();
}

Status regMr(void* collComm, void* data, size_t size, int type, void** mhandle) {
  *mhandle = nullptr;
  (void)commOf(collComm, "CollNet regMr");
  return registerHostMemory(data, size, type, mhandle, "CollNet regMr");
}

Status deregMr(void* /*collComm*/, void* mhandle) {
  return deregisterHostMemory(mhandle, "CollNet deregMr");
}

Status iallreduce(void* collComm, void* send, void* recv, size_t count, ncclDataType_t type,
                  ncclRedOp_t op, void** request) {
  *request = nullptr;
  CollComm& c = commOf(collComm, "CollNet iallreduce");
  coll::checkReduction("CollNet iallreduce", static_cast<int>(type), static_cast<int>(op));
  const auto dt = static_cast<DataType>(type);
  const auto ro = static_cast<ReduceOp>(op);
  const size_t esize = dataTypeSize(dt);
  if (count > SIZE_MAX / esize)
    return Status(ErrorCategory::kInvalidUsage,
                  "CollNet iallreduce: count " + std::to_string(count) + " overflows");
  if (count > 0 && (send == nullptr || recv == nullptr))
    return Status(ErrorCategory::kInvalidUsage, "CollNet iallreduce: null buffer");
  coll::Context* ctx = &c.context();
  *request = c.post(
      Work{[ctx, send, recv, count, dt, ro]() -> std::unique_ptr<coll::Operation> {
             if (count == 0) return nullptr;
             coll::CodecChoice codec;
             codec.codec = ctx->settings().codec;
             codec.errorFeedback = ctx->settings().errorFeedback;
             codec.key = coll::defaultErrorFeedbackKey(count, dt);  // the library's
             return coll::allReduceHierarchical(*ctx, send, recv, count, dt, ro, codec);
           },
           nullptr},
      reportedBytes(count * esize));
  return Status::ok();
}

// The global result is nranks x bytesPerRank (rank r's sendData at r x bytesPerRank); this call
// delivers the window [windowOffset, windowOffset + windowBytes) of it into the SGE list. The
// library's ring all-gather moves the whole result; the window is copied out of it.
Status iallgather(void* collComm, void* send, int nRecvParts, const ncclNetSGE_v11_t* recvParts,
                  size_t bytesPerRank, size_t windowOffset, size_t windowBytes, void** request) {
  *request = nullptr;
  CollComm& c = commOf(collComm, "CollNet iallgather");
  const size_t n = static_cast<size_t>(c.context().size());
  if (nRecvParts < 1 || recvParts == nullptr)
    return Status(ErrorCategory::kInvalidUsage, "CollNet iallgather: no receive parts");
  size_t partsBytes = 0;
  for (int i = 0; i < nRecvParts; ++i) partsBytes += recvParts[i].size;
  if (bytesPerRank > SIZE_MAX / n || windowOffset > n * bytesPerRank ||
      windowBytes > n * bytesPerRank - windowOffset || partsBytes < windowBytes)
    return Status(ErrorCategory::kInvalidUsage,
                  "CollNet iallgather: window [" + std::to_string(windowOffset) + ", +" +
                      std::to_string(windowBytes) + ") outside the " +
                      std::to_string(n * bytesPerRank) + "-byte result or larger than the " +
                      std::to_string(partsBytes) + " bytes of the receive parts");
  std::vector<ncclNetSGE_v11_t> parts(recvParts, recvParts + nRecvParts);
  coll::Context* ctx = &c.context();
  auto all = std::make_shared<std::vector<char>>();  // the whole result, until copied out
  *request = c.post(
      Work{[ctx, send, all, n, bytesPerRank, windowBytes]() -> std::unique_ptr<coll::Operation> {
             if (bytesPerRank == 0 || windowBytes == 0) return nullptr;
             all->resize(n * bytesPerRank);
             return coll::allGatherRing(*ctx, send, all->data(), bytesPerRank, DataType::kUint8);
           },
           [all, parts, windowOffset, windowBytes] {
             size_t at = windowOffset, left = all->empty() ? 0 : windowBytes;
             for (const auto& p : parts) {
               const size_t k = std::min(left, p.size);
               std::memcpy(p.address, all->data() + at, k);
               at += k;
               left -= k;
             }
           }},
      reportedBytes(windowBytes));
  return Status::ok();
}

// The SGE list holds the input (nranks x bytesPerRank); this rank receives its reduced
// bytesPerRank. Only the whole input in one call maps onto the library's ring reduce-scatter.
Status ireducescatter(void* collComm, int nSendParts, const ncclNetSGE_v11_t* sendParts, void* recv,
                      size_t bytesPerRank, size_t windowOffset, size_t windowBytes,
                      ncclDataType_t type, ncclRedOp_t op, void** request) {
  *request = nullptr;
  CollComm& c = commOf(collComm, "CollNet ireducescatter");
  coll::checkReduction("CollNet ireducescatter", static_cast<int>(type), static_cast<int>(op));
  const size_t n = static_cast<size_t>(c.context().size());
  const auto dt = static_cast<DataType>(type);
  const size_t esize = dataTypeSize(dt);
  if (nSendParts < 1 || sendParts == nullptr)
    return Status(ErrorCategory::kInvalidUsage, "CollNet ireducescatter: no send parts");
  if (bytesPerRank > SIZE_MAX / n || windowOffset != 0 || windowBytes != n * bytesPerRank)
    return Status(ErrorCategory::kInvalidUsage,
                  "CollNet ireducescatter: window [" + std::to_string(windowOffset) + ", +" +
                      std::to_string(windowBytes) + ") of a " + std::to_string(n * bytesPerRank) +
                      "-byte input: the xsite CollNet reduces the whole input in one call only "
                      "(set NCCL_ALGO to exclude CollNet for ReduceScatter)");
  if (bytesPerRank % esize != 0)
    return Status(ErrorCategory::kInvalidUsage,
                  "CollNet ireducescatter: " + std::to_string(bytesPerRank) +
                      " bytes per rank is not a whole number of " + std::string(dataTypeName(dt)) +
                      " elements");
  size_t partsBytes = 0;
  for (int i = 0; i < nSendParts; ++i) partsBytes += sendParts[i].size;
  if (partsBytes < windowBytes)
    return Status(ErrorCategory::kInvalidUsage, "CollNet ireducescatter: the send parts hold " +
                                                    std::to_string(partsBytes) + " bytes, not " +
                                                    std::to_string(windowBytes));
  std::vector<ncclNetSGE_v11_t> parts(sendParts, sendParts + nSendParts);
  const auto ro = static_cast<ReduceOp>(op);
  coll::Context* ctx = &c.context();
  auto joined = std::make_shared<std::vector<char>>();  // several parts: the input, contiguous
  *request = c.post(
      Work{[ctx, parts, joined, recv, windowBytes, bytesPerRank, esize, dt,
            ro]() -> std::unique_ptr<coll::Operation> {
             if (bytesPerRank == 0) return nullptr;
             const void* in = parts[0].address;
             if (parts[0].size < windowBytes) {
               joined->resize(windowBytes);
               size_t at = 0;
               for (const auto& p : parts) {
                 const size_t k = std::min(windowBytes - at, p.size);
                 std::memcpy(joined->data() + at, p.address, k);
                 at += k;
               }
               in = joined->data();
             }
             return coll::reduceScatterRing(*ctx, in, recv, bytesPerRank / esize, dt, ro);
           },
           nullptr},
      reportedBytes(bytesPerRank));
  return Status::ok();
}

Status iflush(void* /*collComm*/, void** request) {
  *request = nullptr;  // host memory: nothing to flush
  return Status::ok();
}

Status test(void* request, int* done, int* size) {
  *done = 0;
  auto* r = static_cast<Request*>(request);
  if (r == nullptr || r->magic != Request::kMagic || r->comm == nullptr)
    return Status(ErrorCategory::kInternal, "CollNet test of a request iallreduce did not return");
  return r->comm->test(r, done, size);
}

Status closeColl(void* collComm) {
  if (collComm == nullptr) return Status::ok();
  delete &commOf(collComm, "CollNet closeColl");
  return Status::ok();
}

Status closeListen(void* listenComm) {
  auto* l = static_cast<ListenComm*>(listenComm);
  if (l == nullptr) return Status::ok();
  if (l->magic != ListenComm::kMagic)
    return Status(ErrorCategory::kInternal, "CollNet closeListen of a comm listen did not return");
  l->magic = 0;
  delete l;
  return Status::ok();
}

Status finalize(void* ctx) {
  if (ctx == nullptr) return Status::ok();  // init failed or never ran (NCCL 2.28.9 bug 1)
  auto* c = static_cast<Context*>(ctx);
  if (c->magic != Context::kMagic)
    return Status(ErrorCategory::kInternal, "CollNet finalize of a context init did not return");
  c->magic = 0;
  delete c;
  return Status::ok();
}

}  // namespace xsite::plugin::collnet
