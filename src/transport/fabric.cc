#include "transport/fabric.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <set>

#include "transport/shm/shm.h"
#include "transport/tcp/tcp.h"
#include "util/log.h"

namespace xsite::transport {
namespace {

using Clock = std::chrono::steady_clock;

std::string shmName(uint64_t job, int from, int to, int channel) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/xsite-%016llx-%dto%d-c%d", static_cast<unsigned long long>(job), from,
           to, channel);
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
    : rank_(rank), size_(size), store_(store), opt_(std::move(options)) {}

Fabric::~Fabric() = default;

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
  establishTcp(links);
  XSITE_INFO(kNet, "fabric: %zu connections established", conns_.size());
}

void Fabric::establishShm(const std::vector<LinkRequest>& links) {
  std::vector<const LinkRequest*> shm;
  for (const auto& l : links)
    if (l.backend == Backend::kShm) shm.push_back(&l);
  // Collective over all ranks (a rank without shm links still takes part in the barriers).
  std::map<const LinkRequest*, std::shared_ptr<RingMemory>> inbound;
  std::vector<std::string> created;
  for (const auto* l : shm) {
    std::string name = shmName(opt_.job, l->peer, rank_, l->channel);
    inbound[l] = shm::createRing(name, opt_.shmRingBytes);
    created.push_back(name);
  }
  try {
    bootstrap::allGather(store_, opt_.prefix + "/shm-created", rank_, size_, "", opt_.timeout);
    for (const auto* l : shm)
      conns_[{l->peer, l->channel}] = std::make_unique<RingConnection>(
          l->peer, label(*l), shm::openRing(shmName(opt_.job, rank_, l->peer, l->channel)),
          inbound[l]);
    bootstrap::allGather(store_, opt_.prefix + "/shm-opened", rank_, size_, "", opt_.timeout);
  } catch (...) {
    for (const auto& n : created) shm::unlinkRing(n);
    throw;
  }
  for (const auto& n : created) shm::unlinkRing(n);  // nothing leaks, even after a crash
}

void Fabric::establishTcp(const std::vector<LinkRequest>& links) {
  Fd listener = tcpListen(sockAddrOf(opt_.listenIp, 0));
  std::vector<std::string> addrs = bootstrap::allGather(
      store_, opt_.prefix + "/tcp-addr", rank_, size_, localAddr(listener.get()).toString(),
      opt_.timeout);
  auto deadline = Clock::now() + opt_.timeout;
  std::map<std::pair<int, int>, const LinkRequest*> expected;  // links the peer initiates
  for (const auto& l : links) {
    if (l.backend != Backend::kTcp) continue;
    if (l.peer < rank_) {
      expected[{l.peer, l.channel}] = &l;
      continue;
    }
    // The lower rank connects; the kernel queues it in the peer's backlog until it accepts.
    Fd fd = tcpConnect(parseSockAddr(addrs[l.peer]), deadline);
    setBufferSizes(fd.get(), opt_.socketBufBytes);
    tcp::Hello hello{tcp::Hello::kMagic, rank_, l.channel, 0, opt_.job};
    throwIfError(writeAll(fd.get(), &hello, sizeof(hello), deadline));
    conns_[{l.peer, l.channel}] = std::make_unique<tcp::TcpConnection>(l.peer, label(l), std::move(fd));
  }
  while (!expected.empty()) {
    pollfd pfd{listener.get(), POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0 || ::poll(&pfd, 1, std::min(left, 1000)) < 0 || Clock::now() >= deadline) {
      if (Clock::now() < deadline) continue;
      std::string who;
      for (const auto& [key, l] : expected) who += (who.empty() ? "" : ", ") + label(*l);
      throw Error(ErrorCategory::kTimeout, "these peers never connected: " + who);
    }
    if (!(pfd.revents & POLLIN)) continue;
    Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    tcp::Hello hello{};
    Status s = readAll(fd.get(), &hello, sizeof(hello), Clock::now() + std::chrono::seconds(10));
    if (!s || hello.magic != tcp::Hello::kMagic || hello.job != opt_.job) {
      XSITE_WARN(kNet, "dropping a connection that did not introduce itself as a rank of this job");
      continue;
    }
    auto it = expected.find({hello.rank, hello.channel});
    if (it == expected.end())
      throw Error(ErrorCategory::kRemote, "rank " + std::to_string(hello.rank) +
                                              " opened an unexpected connection on channel " +
                                              std::to_string(hello.channel));
    setBufferSizes(fd.get(), opt_.socketBufBytes);
    conns_[it->first] = std::make_unique<tcp::TcpConnection>(hello.rank, label(*it->second), std::move(fd));
    expected.erase(it);
  }
}

}  // namespace xsite::transport
