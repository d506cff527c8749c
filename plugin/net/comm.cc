#include "plugin/net/comm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>

#include "plugin/net/ucx_comm.h"
#include "plugin/net/wan_comm.h"
#include "transport/tcp/tcp.h"
#include "util/log.h"
#include "util/params.h"

namespace xsite::plugin::net {
namespace {

std::string siteText(int site) {
  return "site " + std::to_string(site);
}

// Connection options shared by both ends.
void prepareSocket(int fd, const LinkSettings& settings, int peerSite) {
  setNoDelay(fd);
  setKeepAlive(fd, settings.fabric.tcpUserTimeout);
  if (settings.fabric.socketBufBytes > 0) setBufferSizes(fd, settings.fabric.socketBufBytes);
  if (peerSite != settings.site && !settings.fabric.wan.congestion.empty() &&
      !setCongestionControl(fd, settings.fabric.wan.congestion))
    XSITE_DEBUG(kNet, "net: TCP_CONGESTION=%s refused (%s); kernel default kept",
                settings.fabric.wan.congestion.c_str(), errnoString(errno).c_str());
}

// A sender's connection in progress (lives in ConnectHandle::pending): one socket, or the
// streams of a WAN comm.
// One socket's greeting: the listener's challenge, our answer and hello, the listener's proof
// (bootstrap/auth.h).
struct Greeting {
  bool connected = false;
  std::unique_ptr<bootstrap::AuthDial> dial;
  bool done = false;
};

struct Connecting {
  transport::Backend backend = transport::Backend::kTcp;
  std::vector<Fd> fds;
  std::vector<Greeting> greetings;
  int peerSite = 0;
  std::string label;
  SockAddr resume{};  // kWanStreams: the receiver's resume listener (port 0: none)
  uint64_t key = 0;   // kWanStreams: the handle's nonce, which names the link when it heals
  std::shared_ptr<UcxWorker> ucx;
#if XSITE_HAVE_UCX
  // kUcx: the receiver's UcxReply, then its worker address.
  UcxReply reply{};
  std::vector<char> address;
  size_t replyGot = 0;
#endif
};

// Advances one socket's greeting as far as its bytes allow (g.done once the listener proved the
// secret and took our hello).
Status greet(int fd, Greeting& g, const std::string& label) {
  switch (g.dial->step(fd)) {
    case bootstrap::AuthDial::State::kWaiting: return Status::ok();
    case bootstrap::AuthDial::State::kProved: g.done = true; return Status::ok();
    case bootstrap::AuthDial::State::kFailed: return g.dial->error();
    case bootstrap::AuthDial::State::kClosed: break;
  }
  return Status(ErrorCategory::kRemote, g.dial->answered()
                                            ? bootstrap::secretMismatch(label)
                                            : label + ": the peer closed the connection");
}

bool wantWan(const LinkSettings& settings, int peerSite) {
  return settings.wanStreams > 0 && peerSite != settings.site;
}

// Cross-site comms encode their payloads when XSITE_NET_CODEC asks for it.
bool encodes(const LinkSettings& settings, int peerSite) {
  return settings.wanCodec != compress::CodecId::kNone && peerSite != settings.site;
}

std::string wanText(int streams) {
  return std::to_string(streams) + " WAN stream" + (streams == 1 ? "" : "s");
}

}  // namespace

// A WAN stream's keepalive, buffers and congestion control, as Fabric prepares its WAN links.
void prepareStream(int fd, const LinkSettings& settings) {
  setKeepAlive(fd, settings.fabric.tcpUserTimeout);
  transport::wan::prepareWanSocket(fd, settings.wanSizing.socketBytes,
                                   settings.fabric.wan.congestion, "XSITE_WAN_CC");
}

// ---- Comm ---------------------------------------------------------------------------------

Comm::Comm(std::string label, int requests)
    : label_(std::move(label)), pool_(static_cast<size_t>(requests)) {}

Status Comm::advance() {
  const size_t before = queue_.size();
  XSITE_RETURN_IF_ERROR(progress());
  const auto now = std::chrono::steady_clock::now();
  if (queue_.empty() || queue_.size() < before) {
    lastMove_ = now;
  } else if (now - lastMove_ > timeout_) {
    return Status(ErrorCategory::kTimeout,
                  label_ + ": no message completed for " +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - lastMove_).count()) +
                      " s with " + std::to_string(queue_.size()) +
                      " in flight (XSITE_TIMEOUT): is the peer alive, and in the same collective?");
  }
  return Status::ok();
}

void Comm::enqueue(Request* r) {
  if (queue_.empty()) lastMove_ = std::chrono::steady_clock::now();
  queue_.push_back(r);
}

Request* Comm::allocRequest() {
  for (auto& r : pool_)
    if (!r.used) {
      r = Request{};
      r.comm = this;
      r.used = true;
      return &r;
    }
  return nullptr;
}

Status Comm::peerError(const std::string& what) const {
  return Status(ErrorCategory::kRemote, label_ + ": " + what);
}

Status Comm::test(Request* request, int* done, int* sizes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (request < pool_.data() || request >= pool_.data() + pool_.size() || !request->used)
    return Status(ErrorCategory::kInternal, label_ + ": test() of a request that is not in flight");
  if (error_) error_ = advance();
  if (!error_) return error_;
  *done = request->done ? 1 : 0;
  if (request->done) {
    if (sizes != nullptr)
      for (int i = 0; i < request->n; ++i) sizes[i] = static_cast<int>(request->got[i]);
    request->used = false;
  }
  return Status::ok();
}

// ---- send ---------------------------------------------------------------------------------

Status SendComm::post(void* data, size_t size, int tag, void** request) {
  std::lock_guard<std::mutex> lock(mu_);
  *request = nullptr;
  if (!error_) return error_;
  if (size > kMaxP2pBytes)
    return Status(ErrorCategory::kInternal, label_ + ": isend of " + std::to_string(size) +
                                                " bytes exceeds maxP2pBytes " +
                                                std::to_string(kMaxP2pBytes));
  Request* r = allocRequest();
  if (r == nullptr) return Status::ok();  // all in flight: NCCL calls again
  r->n = 1;
  r->pending = 1;
  r->data[0] = static_cast<char*>(data);
  r->posted[0] = size;
  r->got[0] = size;
  r->tags[0] = tag;
  enqueue(r);
  *request = r;
  error_ = advance();  // start moving at once; an error surfaces in test()
  return Status::ok();
}

// ---- receive ------------------------------------------------------------------------------

Status RecvComm::post(int n, void** data, const size_t* sizes, const int* tags, void** request) {
  std::lock_guard<std::mutex> lock(mu_);
  *request = nullptr;
  if (!error_) return error_;
  if (n < 1 || n > kMaxRecvs)
    return Status(ErrorCategory::kInternal, label_ + ": irecv of " + std::to_string(n) +
                                                " buffers; maxRecvs is " +
                                                std::to_string(kMaxRecvs));
  Request* r = allocRequest();
  if (r == nullptr) return Status::ok();  // all in flight: NCCL calls again
  r->n = n;
  r->pending = n;
  for (int i = 0; i < n; ++i) {
    r->data[i] = static_cast<char*>(data[i]);
    r->posted[i] = sizes[i];
    r->tags[i] = tags != nullptr ? tags[i] : 0;
  }
  enqueue(r);
  *request = r;
  error_ = advance();
  return Status::ok();
}

void RecvComm::fill(int target, size_t bytes) {
  Request* r = queue_.front();
  r->got[target] = bytes;
  r->filled[target] = true;
  if (--r->pending == 0) {
    r->done = true;
    queue_.pop_front();
  }
}

// ---- listen / accept ----------------------------------------------------------------------

ListenComm::ListenComm(Fd fd, uint64_t nonce, LinkSettings settings,
                       std::shared_ptr<UcxWorker> ucx)
    : fd_(std::move(fd)), nonce_(nonce), settings_(std::move(settings)), ucx_(std::move(ucx)) {}

Status listen(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
              ListenComm** listenComm) {
  *listenComm = nullptr;
  // Accepted WAN streams inherit the listener's buffer sizes, set before listen() so that the
  // window scale the handshake negotiates fits them (same-site sockets take XSITE_SOCKET_BUF_SIZE
  // after accept when it is set).
  Fd fd = tcpListen(sockAddrOf(device.ip, 0), 1024, [&](int f) {
    if (settings.wanStreams > 0) setBufferSizes(f, settings.wanSizing.socketBytes);
  });  // throws Error(kSystem) naming the address
  setNonBlocking(fd.get(), true);
  SockAddr bound = localAddr(fd.get());
  const uint64_t nonce = randomNonce();
  std::memset(handle, 0, sizeof(ConnectHandle));
  handle->magic = ConnectHandle::kMagic;
  handle->version = ConnectHandle::kVersion;
  handle->addr = bound.wire();
  handle->site = settings.site;
  handle->nonce = nonce;
  handle->pending = nullptr;
  if (device.fallback) handle->flags |= ConnectHandle::kNoInterface;
  if (settings.wanStreams > 0 && settings.fabric.wan.reconnectTimeout.count() > 0)
    handle->resumePort = resumePort(device.ip, settings);  // throws Error(kSystem) naming it
  std::shared_ptr<UcxWorker> ucx;
#if XSITE_HAVE_UCX
  if (settings.siteUcx) {
    ucx = ucxWorkerFor(device);  // throws Error naming the UCX failure
    handle->flags |= ConnectHandle::kTakesUcx;
  }
#endif
  XSITE_DEBUG(kNet, "net: listening on %s (%s)", bound.toString().c_str(), device.name.c_str());
  *listenComm = new ListenComm(std::move(fd), nonce, settings, std::move(ucx));
  return Status::ok();
}

bool ListenComm::place(const Hello& h, const std::string& peer, Fd& fd) {
  if (streams_.empty()) {
    const auto backend = static_cast<transport::Backend>(h.backend);
    const bool wan = backend == transport::Backend::kWan;
    const bool known = wan || backend == transport::Backend::kTcp ||
                       (backend == transport::Backend::kUcx && ucx_);
    // A peer's stream count within what XSITE_WAN_STREAMS admits (params.def).
    if (!known || (!wan && h.streams != 1) || h.streams < 1 ||
        h.streams > params::info(params::Id::kWanStreams).max)
      return false;
    first_ = h;
    peer_ = peer;
    streams_.resize(h.streams);
    missing_ = h.streams;
  }
  if (h.backend != first_.backend || h.flags != first_.flags || h.streams != first_.streams ||
      h.site != first_.site || h.stream >= streams_.size() || streams_[h.stream].valid())
    return false;
  if (h.backend == static_cast<uint16_t>(transport::Backend::kWan))
    prepareStream(fd.get(), settings_);
  else
    prepareSocket(fd.get(), settings_, h.site);
  streams_[h.stream] = std::move(fd);
  --missing_;
  return true;
}

Status ListenComm::acceptStep(RecvComm** recvComm) {
  *recvComm = nullptr;
  using Drop = bootstrap::AuthListener::Drop;
  auto dropped = [](Drop why, const std::string& peer) {
    const char* what = why == Drop::kRefused ? "it did not prove it knows the job's secret"
                       : why == Drop::kSilent  ? "no hello in time"
                                               : "it closed the connection before its hello";
    XSITE_INFO(kNet, "net recv from %s: dropped: %s%s", peer.c_str(), what,
               why == Drop::kRefused ? " (XSITE_JOB_SECRET)" : "");
  };
  auto ready = callers_.poll(fd_.get(), dropped);
  if (!ready) return Status(ready.status().category(), "net " + ready.status().message());
  for (auto& c : ready.value()) {
    Hello h;
    std::memcpy(&h, c.hello.data(), sizeof(h));
    if (h.magic != Hello::kMagic || h.nonce != nonce_)
      XSITE_INFO(kNet, "net recv from %s: not the expected sender (bad hello); dropped",
                 c.peer.c_str());
    else if (!place(h, c.peer, c.fd))
      XSITE_INFO(kNet,
                 "net recv from %s: a socket that does not fit the comm being accepted; dropped",
                 c.peer.c_str());
  }
  if (streams_.empty() || missing_ > 0) return Status::ok();
  std::string label = "net recv from " + peer_ + " (" + siteText(first_.site);
  const auto backend = static_cast<transport::Backend>(first_.backend);
  const bool encodes = (first_.flags & Hello::kEncodes) != 0;
  if (backend == transport::Backend::kWan) {
    label += ", " + wanText(first_.streams) + ")";
    WanComm w = acceptWan(std::move(streams_), label, settings_, localAddr(fd_.get()).ip(), nonce_);
    *recvComm = new TransportRecvComm(std::move(w.conn), std::move(w.lease), encodes);
  } else if (backend == transport::Backend::kUcx) {
    XSITE_RETURN_IF_ERROR(acceptUcx(recvComm, label + ", UCX)"));
  } else {
    *recvComm = new TransportRecvComm(
        std::make_unique<transport::tcp::TcpConnection>(0, label + ")", std::move(streams_[0])),
        nullptr, encodes);
  }
  streams_.clear();
  (*recvComm)->setTimeout(settings_.timeout);
  XSITE_DEBUG(kNet, "%s: accepted", (*recvComm)->label().c_str());
  return Status::ok();
}

Status ListenComm::acceptUcx(RecvComm** recvComm, const std::string& label) {
#if XSITE_HAVE_UCX
  uint32_t id = 0;
  std::vector<char> out;
  {
    std::lock_guard<std::mutex> lock(ucx_->mu);
    id = static_cast<uint32_t>(ucx_->nextId++);
    const auto* a = static_cast<const char*>(ucx_->worker->addressData());
    UcxReply reply{UcxReply::kMagic, id, static_cast<uint32_t>(ucx_->worker->addressLength()), 0};
    out.assign(reinterpret_cast<const char*>(&reply),
               reinterpret_cast<const char*>(&reply) + sizeof(reply));
    out.insert(out.end(), a, a + reply.addressBytes);
  }
  Fd fd = std::move(streams_[0]);
  // A fresh socket has room: at once.
  if (Status s = writeAll(fd.get(), out.data(), out.size(),
                          std::chrono::steady_clock::now() + std::chrono::seconds(5));
      !s)
    return Status(ErrorCategory::kRemote, label + ": sending the UCX address: " + s.message());
  *recvComm = new UcxRecvComm(std::move(fd), label, ucx_, id);
  return Status::ok();
#else
  (void)recvComm;
  return Status(ErrorCategory::kInternal, label + ": a UCX comm in a build without UCX");
#endif
}

// ---- connect ------------------------------------------------------------------------------

Status connectStep(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
                   SendComm** sendComm) {
  *sendComm = nullptr;
  if (handle->magic != ConnectHandle::kMagic || handle->version != ConnectHandle::kVersion)
    return Status(ErrorCategory::kInternal,
                  "net connect: the handle is not an xsite net plugin handle (magic/version)");
  auto* c = static_cast<Connecting*>(handle->pending);
  if (c == nullptr) {
    const SockAddr to = SockAddr::fromWire(handle->addr);
    // A listener that found no usable interface fell back to loopback: from another site that
    // can only ever be refused (or reach the wrong process), so say why at once.
    if (handle->site != settings.site && (handle->flags & ConnectHandle::kNoInterface))
      return Status(ErrorCategory::kInvalidUsage,
                    "net connect: the listener in " + siteText(handle->site) + " offers " +
                        to.toString() + ", a loopback address, to this rank in " +
                        siteText(settings.site) +
                        ": it found no usable network interface (its log's WARN names the ones "
                        "it saw); set XSITE_NICS or NCCL_SOCKET_IFNAME there to the interface "
                        "that reaches this site");
    auto owned = std::make_unique<Connecting>();
    const bool wan = wantWan(settings, handle->site);
    const int n = wan ? settings.wanStreams : 1;
    const bool ucx = !wan && handle->site == settings.site && settings.siteUcx &&
                     (handle->flags & ConnectHandle::kTakesUcx) != 0;
    owned->backend = wan ? transport::Backend::kWan : ucx ? transport::Backend::kUcx
                         : transport::Backend::kTcp;
#if XSITE_HAVE_UCX
    if (ucx) owned->ucx = ucxWorkerFor(device);  // throws Error naming the UCX failure
#else
    (void)device;
#endif
    owned->peerSite = handle->site;
    owned->resume = to;
    owned->resume.setPort(ntohs(handle->resumePort));
    owned->key = handle->nonce;
    owned->label = "net send to " + to.toString() + " (" + siteText(handle->site) +
                   (wan ? ", " + wanText(n) : ucx ? std::string(", UCX") : std::string()) + ")";
    for (int i = 0; i < n; ++i) {
      Fd fd = dialStart(to, [&](int f) {
        if (wan) {
          setNoDelay(f);
          prepareStream(f, settings);  // buffer sizes before connect()
        } else {
          prepareSocket(f, settings, handle->site);
        }
      });
      if (!fd.valid())
        return Status(ErrorCategory::kRemote, owned->label + ": connect: " + errnoString(errno));
      owned->fds.push_back(std::move(fd));
      const Hello hello{Hello::kMagic, settings.site, handle->nonce, static_cast<uint16_t>(i),
                        static_cast<uint16_t>(n), static_cast<uint16_t>(owned->backend),
                        encodes(settings, handle->site) ? Hello::kEncodes : uint16_t{0}};
      owned->greetings.emplace_back();
      owned->greetings.back().dial = std::make_unique<bootstrap::AuthDial>(
          settings.fabric.secret, owned->label, &hello, sizeof(hello));
    }
    c = owned.release();
    handle->pending = c;
  }
  auto fail = [&](Status s) {
    delete c;
    handle->pending = nullptr;
    return s;
  };
  bool all = true;
  for (size_t i = 0; i < c->fds.size(); ++i) {
    Greeting& g = c->greetings[i];
    const int fd = c->fds[i].get();
    if (!g.connected) {
      pollfd p{c->fds[i].get(), POLLOUT, 0};
      int n = ::poll(&p, 1, 0);
      if (n < 0 && errno != EINTR)
        return fail(Status(ErrorCategory::kSystem, "net connect: poll: " + errnoString(errno)));
      if (n <= 0) {
        all = false;
        continue;
      }
      const int err = socketError(c->fds[i].get());
      if (err != 0)
        return fail(
            Status(ErrorCategory::kRemote, c->label + ": connect: " + errnoString(err) +
                                               " (is the receiving rank alive and reachable?)"));
      g.connected = true;
    }
    Status st = greet(fd, g, c->label);
    if (!st) return fail(st);
    if (!g.done) all = false;
  }
  if (!all) return Status::ok();
#if XSITE_HAVE_UCX
  if (c->backend == transport::Backend::kUcx) {  // the receiver's comm id and worker address
    const int fd = c->fds[0].get();
    while (true) {
      char* dst;
      size_t want;
      if (c->replyGot < sizeof(UcxReply)) {
        dst = reinterpret_cast<char*>(&c->reply) + c->replyGot;
        want = sizeof(UcxReply) - c->replyGot;
      } else {
        if (c->address.empty()) {
          if (c->reply.magic != UcxReply::kMagic || c->reply.addressBytes == 0 ||
              c->reply.addressBytes > kMaxUcxAddressBytes)
            return fail(Status(ErrorCategory::kRemote,
                               c->label + ": bad UCX reply (not an xsite net plugin peer?)"));
          c->address.resize(c->reply.addressBytes);
        }
        const size_t done = c->replyGot - sizeof(UcxReply);
        if (done == c->address.size()) break;
        dst = c->address.data() + done;
        want = c->address.size() - done;
      }
      size_t read = 0;  // of `want`, this call
      const ReadProgress got = readToward(fd, dst, want, read);
      c->replyGot += read;
      if (got == ReadProgress::kClosed)
        return fail(Status(ErrorCategory::kRemote, c->label + ": the peer closed the connection"));
      if (got == ReadProgress::kWaiting) return Status::ok();  // not all there yet: call again
    }
    try {
      *sendComm = new UcxSendComm(std::move(c->fds[0]), c->label, c->ucx, c->reply.commId,
                                  c->address.data(), c->address.size());
    } catch (const Error& e) {
      return fail(Status(e.category(), c->label + ": " + e.message()));
    }
    (*sendComm)->setTimeout(settings.timeout);
    XSITE_DEBUG(kNet, "%s: connected", c->label.c_str());
    delete c;
    handle->pending = nullptr;
    return Status::ok();
  }
#endif
  const compress::CodecId codec =
      encodes(settings, c->peerSite) ? settings.wanCodec : compress::CodecId::kNone;
  if (c->backend == transport::Backend::kWan) {
    WanComm w = connectWan(std::move(c->fds), c->label, settings, c->resume, c->key);
    *sendComm = new TransportSendComm(std::move(w.conn), std::move(w.lease), codec);
  } else {
    *sendComm = new TransportSendComm(
        std::make_unique<transport::tcp::TcpConnection>(0, c->label, std::move(c->fds[0])),
        nullptr, codec);
  }
  (*sendComm)->setTimeout(settings.timeout);
  XSITE_DEBUG(kNet, "%s: connected", c->label.c_str());
  delete c;
  handle->pending = nullptr;
  return Status::ok();
}

}  // namespace xsite::plugin::net
