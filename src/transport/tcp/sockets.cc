// The socket rendezvous of the TCP and WAN-stream backends (fabric.h's Establisher for both):
// every rank listens once per kind (a plain and a WAN listener), the lower rank of a pair dials,
// proves the job's secret and says who it is (tcp::Hello), and the WAN streams to one peer are
// gathered into one WanLink shared by its channels, with healing, TLS and the proxy thread.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bootstrap/auth.h"
#include "transport/fabric.h"
#include "transport/tcp/tcp.h"
#include "transport/wan/proxy.h"
#include "transport/wan/resume.h"
#include "transport/wan/wan.h"
#include "util/log.h"

namespace xsite::transport::tcp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxCallers = 1024;                 // connections proving themselves at once
constexpr auto kCallerLimit = std::chrono::seconds(10);  // to prove the secret and say hello

class SocketEstablisher final : public Establisher {
 public:
  void establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& links,
                 ConnectionMap& out) override;
  void drain(Clock::time_point deadline) noexcept override {
    for (wan::WanLink* l : wanLinks_)
      if (!l->drain(deadline))
        XSITE_INFO(kNet, "%s: closed with frames the peer never acknowledged", l->label().c_str());
  }
  double wanRttUs() const noexcept override {
    double rtt = 0;
    for (const wan::WanLink* l : wanLinks_) rtt = std::max(rtt, l->minRttUs());
    return rtt;
  }

 private:
  struct SocketGroup {
    std::vector<const LinkRequest*> links;  // by channel
    std::string label;
  };
  // Socket set-up of a WAN stream (buffers before connect, congestion control).
  void prepareWanSocket(int fd, bool bulk);
  // `peerWan`: the peer's WAN listener, where a broken stream is dialed again.
  void addConnections(const SocketGroup& g, std::vector<Fd> fds, const SockAddr& peerWan);

  const FabricOptions& opt() const { return options_; }
  FabricOptions options_;  // the fabric's (the healing of a WAN link uses them later)
  const EstablishEnv* env_ = nullptr;  // during establish()
  ConnectionMap* out_ = nullptr;       // ... and where its connections go
  std::vector<wan::WanLink*> wanLinks_;  // every WAN link made (owned by its connections)
  std::unique_ptr<wan::ResumeAcceptor> resumeAcceptor_;  // until the proxy takes it
  std::unique_ptr<wan::WanProxy> wanProxy_;  // keeps staged WAN bytes flowing, heals links
  wan::WanSizing wanSizing_{};
  std::shared_ptr<const wan::TlsContext> wanTls_;  // WanLinkOptions::tls, for every WAN link
};

}  // namespace

std::unique_ptr<Establisher> makeEstablisher() { return std::make_unique<SocketEstablisher>(); }

void SocketEstablisher::prepareWanSocket(int fd, bool bulk) {
  wan::prepareWanSocket(fd, wanSizing_.socketBytes,
                        bulk ? opt().wan.congestion : opt().wan.latencyCongestion,
                        bulk ? "XSITE_WAN_CC" : "XSITE_WAN_CC_LATENCY");
}

// The connections of one socket group: a TCP link, or every WAN channel to one peer over one
// shared set of streams.
void SocketEstablisher::addConnections(const SocketGroup& g, std::vector<Fd> fds, const SockAddr& peerWan) {
  const LinkRequest& first = *g.links.front();
  for (const Fd& fd : fds) setKeepAlive(fd.get(), opt().tcpUserTimeout);
  if (first.backend == Backend::kTcp) {
    (*out_)[{first.peer, first.channel}] =
        std::make_unique<tcp::TcpConnection>(first.peer, env_->label(first), std::move(fds[0]));
    return;
  }
  wan::WanOptions wo;
  wo.frameBytes = opt().wan.frameBytes;
  wo.size(wanSizing_);
  if (opt().wan.tls) {
    wo.tls = wanTls_;
    wo.tlsClient = env_->rank < first.peer;  // the side that dialed
  }
  auto link = std::make_shared<wan::WanLink>(g.label, std::move(fds), wo);
  wanLinks_.push_back(link.get());  // owned by its connections
  if (opt().wan.reconnectTimeout.count() > 0) {
    // The lower rank dialed at set-up and dials again; the higher one answers (resumeAcceptor_).
    const bool dialer = env_->rank < first.peer;
    wan::WanResume r;
    r.dialer = dialer;
    r.peer = peerWan;
    r.hello.rank = env_->rank;
    r.hello.channel = first.channel;
    r.hello.job = opt().job;
    const bool bulk = first.bulk;
    r.prepare = [this, bulk](int fd) {
      prepareWanSocket(fd, bulk);
      setKeepAlive(fd, opt().tcpUserTimeout);
    };
    r.timeout = opt().wan.reconnectTimeout;
    r.secret = opt().secret;
    link->enableResume(std::move(r));
    if (!dialer) resumeAcceptor_->add(opt().job, first.peer, first.channel, link.get());
  }
  for (const LinkRequest* l : g.links)
    (*out_)[{l->peer, l->channel}] = std::make_unique<wan::WanConnection>(l->peer, env_->label(*l), link, l->channel);
}

// TCP and WAN-stream links, in socket groups: a TCP link is a group of its own; the WAN links
// to one peer share one set of streams (per kind: bulk or latency, which differ in congestion
// control), so that a few busy flows per pair of ranks carry every lane. Every rank listens
// once per kind; the lower rank of a pair connects (the kernel queues it in the peer's backlog
// until the peer accepts), and the first bytes on a socket say who is calling, for which group
// (its lowest channel) and stream, of which job.
void SocketEstablisher::establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& links,
                                  ConnectionMap& out) {
  env_ = &env;
  out_ = &out;
  options_ = env.options;
  // Without the job's secret this throws, before any connection is made.
  if (opt().wan.tls) wanTls_ = std::make_shared<const wan::TlsContext>(opt().secret);
  // WAN sizing from the bandwidth-delay product (wan::wanSizing, shared with the NCCL net
  // plugin); XSITE_WAN_WINDOW may set the window.
  const int streams = std::max(1, opt().wan.streams);
  wanSizing_ = wan::wanSizing(opt().wan.rateMbit, opt().wan.latencyUs, streams, opt().wan.windowBytes);
  std::map<std::pair<int, int>, SocketGroup> groups;  // by (peer, lowest channel)
  {
    std::map<std::pair<int, bool>, std::vector<const LinkRequest*>> wanByPeer;
    for (const LinkRequest* l : links) {
      if (l->backend == Backend::kTcp) groups[{l->peer, l->channel}] = SocketGroup{{l}, env_->label(*l)};
      if (l->backend == Backend::kWan) wanByPeer[{l->peer, l->bulk}].push_back(l);
    }
    for (auto& [key, members] : wanByPeer) {
      std::sort(members.begin(), members.end(),
                [](const LinkRequest* a, const LinkRequest* b) { return a->channel < b->channel; });
      std::string name = "rank " + std::to_string(key.first) + " (WAN streams" +
                         (key.second ? "" : ", latency") + ")";
      groups[{key.first, members.front()->channel}] = SocketGroup{members, std::move(name)};
    }
  }
  Fd listener = tcpListen(sockAddrOf(opt().listenIp, 0));
  // Accepted WAN sockets inherit the listener's buffer sizes (set before listen()).
  Fd wanListener = tcpListen(sockAddrOf(opt().listenIp, 0), 1024,
                             [&](int fd) { setBufferSizes(fd, wanSizing_.socketBytes); });
  std::vector<std::string> addrs = bootstrap::allGather(
      env_->store, opt().prefix + "/tcp-addr", env_->rank, env_->size, localAddr(listener.get()).toString() + " " +
      localAddr(wanListener.get()).toString(), opt().timeout);
  // After set-up the WAN listener answers peers that re-open a broken stream.
  if (std::any_of(groups.begin(), groups.end(),
                  [](const auto& g) { return g.second.links.front()->backend == Backend::kWan; }))
    resumeAcceptor_ = std::make_unique<wan::ResumeAcceptor>(Fd(::dup(wanListener.get())), opt().secret);
  auto peerAddr = [&](int peer, bool wanKind) {
    const std::string& a = addrs[peer];
    size_t sp = a.find(' ');
    return parseSockAddr(wanKind ? a.substr(sp + 1) : a.substr(0, sp));
  };
  auto deadline = Clock::now() + opt().timeout;
  struct Pending {
    const SocketGroup* group;
    std::vector<Fd> fds;
    int missing;
  };
  std::map<std::pair<int, int>, Pending> expected;  // groups the peer initiates
  for (const auto& [key, g] : groups) {
    const LinkRequest& l = *g.links.front();
    const bool isWan = l.backend == Backend::kWan;
    const int n = isWan ? streams : 1;
    if (l.peer < env_->rank) {
      expected[key] = Pending{&g, std::vector<Fd>(n), n};
      continue;
    }
    std::vector<Fd> fds;
    for (int s = 0; s < n; ++s) {
      auto t0 = Clock::now();
      Fd fd = tcpConnect(peerAddr(l.peer, isWan), deadline,
                         [&](int f) { if (isWan) prepareWanSocket(f, l.bulk); });
      if (isWan && s == 0)
        XSITE_INFO(kNet, "%s: %d streams for %zu channels, connect took %.2f ms (RTT), socket "
                         "buffers %d bytes, %s",
                   g.label.c_str(), n, g.links.size(),
                   std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
                   wanSizing_.socketBytes, congestionControl(fd.get()).c_str());
      throwIfError(bootstrap::authenticateToListener(fd.get(), opt().secret, deadline,
                                                     "the listener of " + g.label));
      tcp::Hello hello{tcp::Hello::kMagic, env_->rank, l.channel, static_cast<uint32_t>(s), opt().job};
      throwIfError(writeAll(fd.get(), &hello, sizeof(hello), deadline));
      fds.push_back(std::move(fd));
    }
    addConnections(g, std::move(fds), peerAddr(l.peer, true));
  }
  // Callers prove the job's secret, then say who they are; nothing here blocks on one of them,
  // and one that stays silent is dropped after a few seconds.
  bootstrap::AuthListener callers(opt().secret, sizeof(tcp::Hello), kCallerLimit, kMaxCallers);
  bool warned = false;
  auto stranger = [&](const char* what) {
    if (!warned)
      XSITE_WARN(kNet, "dropping a connection that %s (further ones are dropped silently)", what);
    warned = true;
  };
  auto dropped = [&](bootstrap::AuthListener::Drop why, const std::string&) {
    if (why == bootstrap::AuthListener::Drop::kRefused)
      stranger("did not prove it knows the job's secret (XSITE_JOB_SECRET)");
    if (why == bootstrap::AuthListener::Drop::kSilent) stranger("stayed silent");
  };
  const int listeners[2] = {listener.get(), wanListener.get()};
  for (int fd : listeners) setNonBlocking(fd, true);  // accepted until none is left
  std::vector<pollfd> pfds;
  while (!expected.empty()) {
    const auto now = Clock::now();
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
    if (left <= 0) {
      std::string who;
      for (const auto& [key, p] : expected) who += (who.empty() ? "" : ", ") + p.group->label;
      throw Error(ErrorCategory::kTimeout, "these peers never connected: " + who);
    }
    pfds.clear();
    for (int fd : listeners) pfds.push_back({fd, POLLIN, 0});
    callers.appendPollFds(pfds);
    if (::poll(pfds.data(), pfds.size(), std::min(left, 100)) < 0) continue;
    for (int fd : listeners) {
      auto ready = callers.poll(fd, dropped);
      if (!ready) throw Error(ready.status().category(), "data listener: " + ready.status().message());
      for (auto& c : ready.value()) {
        tcp::Hello hello;
        std::memcpy(&hello, c.hello.data(), sizeof(hello));
        if (hello.magic != tcp::Hello::kMagic || hello.job != opt().job) {
          stranger("did not introduce itself as a rank of this job");
          continue;
        }
        auto ex = expected.find({hello.rank, hello.channel});
        if (ex == expected.end() || hello.stream >= ex->second.fds.size() ||
            ex->second.fds[hello.stream].valid())
          throw Error(ErrorCategory::kRemote, "rank " + std::to_string(hello.rank) +
                                                  " opened an unexpected connection (channel " +
                                                  std::to_string(hello.channel) + ", stream " +
                                                  std::to_string(hello.stream) +
                                                  "): do all ranks use the same settings?");
        Pending& p = ex->second;
        const LinkRequest& l = *p.group->links.front();
        setNonBlocking(c.fd.get(), false);
        if (l.backend == Backend::kWan) prepareWanSocket(c.fd.get(), l.bulk);
        p.fds[hello.stream] = std::move(c.fd);
        if (--p.missing == 0) {
          addConnections(*p.group, std::move(p.fds), peerAddr(l.peer, true));
          expected.erase(ex);
        }
      }
    }
  }
  if (!wanLinks_.empty())
    wanProxy_ = std::make_unique<wan::WanProxy>(wanLinks_, std::move(resumeAcceptor_));
  env_ = nullptr;
  out_ = nullptr;
}

}  // namespace xsite::transport::tcp
