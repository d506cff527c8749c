#include "transport/fabric.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <list>
#include <set>

#include "transport/shm/shm.h"
#include "transport/tcp/tcp.h"
#ifdef XSITE_HAVE_UCX
#include "transport/ucx/ucx.h"
#endif
#include "transport/wan/proxy.h"
#include "transport/wan/resume.h"
#include "transport/wan/wan.h"
#include "util/log.h"

namespace xsite::transport {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxCallers = 1024;                 // connections proving themselves at once
constexpr auto kCallerLimit = std::chrono::seconds(10);  // to prove the secret and say hello

std::string shmName(uint64_t job, int from, int to, int channel) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/xsite-%016llx-%dto%d-c%d", static_cast<unsigned long long>(job), from,
           to, channel);
  return buf;
}

// A rank's shared-memory doorbell (ring_buffer.h), a FIFO beside the rings.
std::string doorbellPath(uint64_t job, int rank) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/dev/shm/xsite-%016llx-%d-bell", static_cast<unsigned long long>(job),
           rank);
  return buf;
}

}  // namespace

std::shared_ptr<RingMemory> LoopbackHub::ring(int from, int to, int channel) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& r = rings_[{from, to, channel}];
  if (!r) r = makeHeapRing(ringBytes_);
  return r;
}

Fabric::Fabric(int rank, int size, bootstrap::Store& store, FabricOptions options)
    : rank_(rank), size_(size), store_(store), opt_(std::move(options)) {
  // Without the job's secret this throws, before any connection is made.
  if (opt_.wan.tls) wanTls_ = std::make_shared<const wan::TlsContext>(opt_.secret);
}

Fabric::~Fabric() {
  // Deliver what is staged before the sockets close, and wait for the peer to acknowledge it
  // (closing with acknowledgements unread would reset the connection under the peer's last
  // frames). A dead peer ends the wait early.
  const auto deadline =
      Clock::now() + std::min<std::chrono::milliseconds>(opt_.timeout, std::chrono::seconds(60));
  if (abandoned_.load(std::memory_order_acquire)) {  // Communicator::abort(): no waiting
    for (auto& [key, c] : conns_) c->abandon();
  } else {
    for (wan::WanLink* l : wanLinks_)
      if (!l->drain(deadline))
        XSITE_INFO(kNet, "%s: closed with frames the peer never acknowledged", l->label().c_str());
  }
  wanProxy_.reset();
}

double Fabric::wanRttUs() const noexcept {
  double rtt = 0;
  for (const wan::WanLink* l : wanLinks_) rtt = std::max(rtt, l->minRttUs());
  return rtt;
}

std::string Fabric::label(const LinkRequest& l) const {
  return "rank " + std::to_string(l.peer) + " (" + l.channelName + ", " + backendName(l.backend) +
         ")";
}

Connection& Fabric::connection(int peer, int channel) const {
  auto it = conns_.find({peer, channel});
  if (it == conns_.end())
    throw Error(ErrorCategory::kInternal, "no connection to rank " + std::to_string(peer) +
                                              " on channel " + std::to_string(channel));
  return *it->second;
}

void Fabric::establish(const std::vector<LinkRequest>& links) {
  for (const auto& l : links) {
    if (l.peer < 0 || l.peer >= size_ || l.peer == rank_)
      throw Error(ErrorCategory::kInternal, "bad link request to rank " + std::to_string(l.peer));
    if (l.backend == Backend::kLoopback) {
      if (!opt_.hub) throw Error(ErrorCategory::kInternal, "loopback link without a hub");
      conns_[{l.peer, l.channel}] = std::make_unique<RingConnection>(
          l.peer, label(l), opt_.hub->ring(rank_, l.peer, l.channel),
          opt_.hub->ring(l.peer, rank_, l.channel));
    }
  }
  establishShm(links);
  establishUcx(links);
  establishSockets(links);
  if (!wanLinks_.empty())
    wanProxy_ = std::make_unique<wan::WanProxy>(wanLinks_, std::move(resumeAcceptor_));
  XSITE_INFO(kNet, "fabric: %zu connections established", conns_.size());
}

void Fabric::establishShm(const std::vector<LinkRequest>& links) {
  std::vector<const LinkRequest*> shm;
  for (const auto& l : links)
    if (l.backend == Backend::kShm) shm.push_back(&l);
  // Collective over all ranks (a rank without shm links still takes part in the barriers).
  std::map<const LinkRequest*, std::shared_ptr<RingMemory>> inbound;
  std::vector<std::string> created;
  // This rank's doorbell: without one (a file system that refuses FIFOs) its idle calls poll
  // the rings by time, as they do for any peer that could not open it.
  std::shared_ptr<const Doorbell> ownBell;
  const std::string bellPath = doorbellPath(opt_.job, rank_);
  if (!shm.empty() && !(ownBell = shm::createDoorbell(bellPath)))
    XSITE_INFO(kNet, "no doorbell FIFO at %s (%s): shared-memory waits poll by time",
               bellPath.c_str(), errnoString(errno).c_str());
  for (const auto* l : shm) {
    std::string name = shmName(opt_.job, l->peer, rank_, l->channel);
    inbound[l] = shm::createRing(name, opt_.shmRingBytes);
    created.push_back(name);
  }
  auto cleanUp = [&] {
    for (const auto& n : created) shm::unlinkRing(n);  // nothing leaks, even after a crash
    if (ownBell) shm::unlinkDoorbell(bellPath);
  };
  try {
    bootstrap::allGather(store_, opt_.prefix + "/shm-created", rank_, size_, "", opt_.timeout);
    // The peers' doorbells; a ring uses both ends' or neither.
    std::map<int, std::shared_ptr<const Doorbell>> peerBells;
    for (const auto* l : shm)
      if (ownBell && !peerBells.count(l->peer))
        peerBells[l->peer] = shm::openDoorbell(doorbellPath(opt_.job, l->peer));
    std::string opened = ",";  // the peers whose doorbell this rank holds: ",3,5,"
    for (const auto& [peer, bell] : peerBells)
      if (bell) opened += std::to_string(peer) + ",";
    const std::vector<std::string> openedBy =
        bootstrap::allGather(store_, opt_.prefix + "/shm-opened", rank_, size_, opened, opt_.timeout);
    for (const auto* l : shm) {
      auto bell = peerBells.find(l->peer);
      const bool both = bell != peerBells.end() && bell->second &&
                        openedBy[l->peer].find("," + std::to_string(rank_) + ",") != std::string::npos;
      conns_[{l->peer, l->channel}] = std::make_unique<RingConnection>(
          l->peer, label(*l), shm::openRing(shmName(opt_.job, rank_, l->peer, l->channel)),
          inbound[l], both ? ownBell : nullptr, both ? bell->second : nullptr);
    }
    bootstrap::allGather(store_, opt_.prefix + "/shm-mapped", rank_, size_, "", opt_.timeout);
  } catch (...) {
    cleanUp();
    throw;
  }
  cleanUp();
}

// UCX links: pairwise through the store (a rank without UCX links takes no part), one UCP worker
// for all of them.
void Fabric::establishUcx(const std::vector<LinkRequest>& links) {
  std::vector<const LinkRequest*> ucx;
  for (const auto& l : links)
    if (l.backend == Backend::kUcx) ucx.push_back(&l);
  if (ucx.empty()) return;
#ifdef XSITE_HAVE_UCX
  std::vector<ucx::LinkSpec> specs;
  for (const auto* l : ucx) specs.push_back({l->peer, l->channel, label(*l)});
  auto made = ucx::establish(rank_, store_, opt_.prefix, specs, opt_.timeout, opt_.ucxNetDevices);
  for (size_t i = 0; i < ucx.size(); ++i) conns_[{ucx[i]->peer, ucx[i]->channel}] = std::move(made[i]);
#else
  throw Error(ErrorCategory::kInvalidUsage,
              "a UCX link was requested but xsite was built without UCX (install libucx-dev and "
              "rebuild, or set XSITE_SITE_TRANSPORT=tcp)");
#endif
}

void Fabric::prepareWanSocket(int fd, bool bulk) {
  const std::string& cc = bulk ? opt_.wan.congestion : opt_.wan.latencyCongestion;
  if (wan::prepareWanSocket(fd, wanSizing_.socketBytes, cc)) return;
  if (!warnedCongestion_) {
    XSITE_WARN(kNet, "the kernel refused TCP congestion control '%s' for WAN streams (%s); they use "
                     "'%s'. Load it (modprobe tcp_%s) or choose another with %s",
               cc.c_str(), errnoString(errno).c_str(), congestionControl(fd).c_str(), cc.c_str(),
               bulk ? "XSITE_WAN_CC" : "XSITE_WAN_CC_LATENCY");
    warnedCongestion_ = true;
  }
}

// The connections of one socket group: a TCP link, or every WAN channel to one peer over one
// shared set of streams.
void Fabric::addSocketConnections(const SocketGroup& g, std::vector<Fd> fds, const SockAddr& peerWan) {
  const LinkRequest& first = *g.links.front();
  for (const Fd& fd : fds) setKeepAlive(fd.get(), opt_.tcpUserTimeout);
  if (first.backend == Backend::kTcp) {
    conns_[{first.peer, first.channel}] =
        std::make_unique<tcp::TcpConnection>(first.peer, label(first), std::move(fds[0]));
    return;
  }
  wan::WanOptions wo;
  wo.frameBytes = opt_.wan.frameBytes;
  wo.size(wanSizing_);
  if (opt_.wan.tls) {
    wo.tls = wanTls_;
    wo.tlsClient = rank_ < first.peer;  // the side that dialed
  }
  auto link = std::make_shared<wan::WanLink>(g.label, std::move(fds), wo);
  wanLinks_.push_back(link.get());  // owned by its connections
  if (opt_.wan.reconnectTimeout.count() > 0) {
    // The lower rank dialed at set-up and dials again; the higher one answers (resumeAcceptor_).
    const bool dialer = rank_ < first.peer;
    wan::WanResume r;
    r.dialer = dialer;
    r.peer = peerWan;
    r.hello.rank = rank_;
    r.hello.channel = first.channel;
    r.hello.job = opt_.job;
    const bool bulk = first.bulk;
    r.prepare = [this, bulk](int fd) {
      prepareWanSocket(fd, bulk);
      setKeepAlive(fd, opt_.tcpUserTimeout);
    };
    r.timeout = opt_.wan.reconnectTimeout;
    r.secret = opt_.secret;
    link->enableResume(std::move(r));
    if (!dialer) resumeAcceptor_->add(opt_.job, first.peer, first.channel, link.get());
  }
  for (const LinkRequest* l : g.links)
    conns_[{l->peer, l->channel}] = std::make_unique<wan::WanConnection>(l->peer, label(*l), link, l->channel);
}

// TCP and WAN-stream links, in socket groups: a TCP link is a group of its own; the WAN links
// to one peer share one set of streams (per kind: bulk or latency, which differ in congestion
// control), so that a few busy flows per pair of ranks carry every lane. Every rank listens
// once per kind; the lower rank of a pair connects (the kernel queues it in the peer's backlog
// until the peer accepts), and the first bytes on a socket say who is calling, for which group
// (its lowest channel) and stream, of which job.
void Fabric::establishSockets(const std::vector<LinkRequest>& links) {
  // WAN sizing from the bandwidth-delay product (wan::wanSizing, shared with the NCCL net
  // plugin); XSITE_WAN_WINDOW may set the window.
  const int streams = std::max(1, opt_.wan.streams);
  wanSizing_ = wan::wanSizing(opt_.wan.rateMbit, opt_.wan.latencyUs, streams, opt_.wan.windowBytes);
  std::map<std::pair<int, int>, SocketGroup> groups;  // by (peer, lowest channel)
  {
    std::map<std::pair<int, bool>, std::vector<const LinkRequest*>> wanByPeer;
    for (const auto& l : links) {
      if (l.backend == Backend::kTcp) groups[{l.peer, l.channel}] = SocketGroup{{&l}, label(l)};
      if (l.backend == Backend::kWan) wanByPeer[{l.peer, l.bulk}].push_back(&l);
    }
    for (auto& [key, members] : wanByPeer) {
      std::sort(members.begin(), members.end(),
                [](const LinkRequest* a, const LinkRequest* b) { return a->channel < b->channel; });
      std::string name = "rank " + std::to_string(key.first) + " (WAN streams" +
                         (key.second ? "" : ", latency") + ")";
      groups[{key.first, members.front()->channel}] = SocketGroup{members, std::move(name)};
    }
  }
  Fd listener = tcpListen(sockAddrOf(opt_.listenIp, 0));
  // Accepted WAN sockets inherit the listener's buffer sizes (set before listen()).
  Fd wanListener = tcpListen(sockAddrOf(opt_.listenIp, 0), 1024,
                             [&](int fd) { setBufferSizes(fd, wanSizing_.socketBytes); });
  std::vector<std::string> addrs = bootstrap::allGather(
      store_, opt_.prefix + "/tcp-addr", rank_, size_, localAddr(listener.get()).toString() + " " +
      localAddr(wanListener.get()).toString(), opt_.timeout);
  // After set-up the WAN listener answers peers that re-open a broken stream.
  if (std::any_of(groups.begin(), groups.end(),
                  [](const auto& g) { return g.second.links.front()->backend == Backend::kWan; }))
    resumeAcceptor_ = std::make_unique<wan::ResumeAcceptor>(Fd(::dup(wanListener.get())), opt_.secret);
  auto peerAddr = [&](int peer, bool wanKind) {
    const std::string& a = addrs[peer];
    size_t sp = a.find(' ');
    return parseSockAddr(wanKind ? a.substr(sp + 1) : a.substr(0, sp));
  };
  auto deadline = Clock::now() + opt_.timeout;
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
    if (l.peer < rank_) {
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
      throwIfError(bootstrap::authenticateToListener(fd.get(), opt_.secret, deadline,
                                                     "the listener of " + g.label));
      tcp::Hello hello{tcp::Hello::kMagic, rank_, l.channel, static_cast<uint32_t>(s), opt_.job};
      throwIfError(writeAll(fd.get(), &hello, sizeof(hello), deadline));
      fds.push_back(std::move(fd));
    }
    addSocketConnections(g, std::move(fds), peerAddr(l.peer, true));
  }
  // Callers prove the job's secret, then say who they are; nothing here blocks on one of them,
  // and one that stays silent is dropped after a few seconds.
  struct Caller {
    Fd fd;
    bootstrap::AuthAccept auth;
    bool authed = false;
    tcp::Hello hello{};
    size_t got = 0;
    Clock::time_point by;
  };
  std::list<Caller> callers;
  bool warned = false;
  auto stranger = [&](const char* what) {
    if (!warned)
      XSITE_WARN(kNet, "dropping a connection that %s (further ones are dropped silently)", what);
    warned = true;
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
    for (const Caller& c : callers) pfds.push_back({c.fd.get(), POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), std::min(left, 100)) < 0) continue;
    for (int fd : listeners) {
      for (int i = 0; i < 64; ++i) {
        Fd conn(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn.valid()) break;
        if (callers.size() >= kMaxCallers) callers.pop_front();  // the oldest waits no longer
        callers.push_back(Caller{std::move(conn), bootstrap::AuthAccept(opt_.secret), false, {}, 0,
                                 now + kCallerLimit});
        if (!callers.back().auth.start(callers.back().fd.get())) callers.pop_back();
      }
    }
    for (auto it = callers.begin(); it != callers.end();) {
      Caller& c = *it;
      bool done = false;  // handed over or dropped
      if (!c.authed) {
        const auto st = c.auth.step(c.fd.get());
        if (st == bootstrap::AuthAccept::State::kRefused)
          stranger("did not prove it knows the job's secret (XSITE_JOB_SECRET)");
        done = st == bootstrap::AuthAccept::State::kRefused ||
               st == bootstrap::AuthAccept::State::kClosed;
        c.authed = st == bootstrap::AuthAccept::State::kAccepted;
      }
      if (c.authed && !done) {
        done = readToward(c.fd.get(), &c.hello, sizeof(c.hello), c.got) == ReadProgress::kClosed;
      }
      if (!done && c.got == sizeof(c.hello)) {
        done = true;
        const tcp::Hello& hello = c.hello;
        if (hello.magic != tcp::Hello::kMagic || hello.job != opt_.job) {
          stranger("did not introduce itself as a rank of this job");
        } else {
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
            addSocketConnections(*p.group, std::move(p.fds), peerAddr(l.peer, true));
            expected.erase(ex);
          }
        }
      }
      if (!done && now > c.by) {
        stranger("stayed silent");
        done = true;
      }
      it = done ? callers.erase(it) : std::next(it);
    }
  }
}

}  // namespace xsite::transport
