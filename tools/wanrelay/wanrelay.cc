// xsite-wanrelay: the WAN emulator of xsite-run's loopback mode (no root), as a user-space TCP
// relay.
//
// Without root there are no namespaces or TUN devices, so every rank runs on 127.0.0.1 and the
// only place to put a WAN is between the TCP connections themselves. Each site gets its own
// loopback address (xsite-run sets XSITE_LISTEN_ADDR=127.10.<s>.1), and this program:
//
//  1. is the "store gateway" of every site but site 0: ranks of site s reach the rendezvous store
//     (served by rank 0) through a port of this program, which rewrites every "IP:PORT" token of a
//     site address in the values going through it, so that a rank sees the listen address of a
//     rank in another site as a relay port (relay address 127.10.254.1) and the address of a rank
//     in its own site unchanged. Values written from site s are stored as site 0 sees them, so
//     site 0's ranks (rank 0 among them, which serves the store) talk to the store directly.
//  2. forwards every connection made to a relay port to the real address, imposing per direction
//     of each pair of sites the model of ../wanem/link_model.h (one-way delay, jitter, rate,
//     drop-tail queue) on the byte stream. All connections between two sites share that pair's
//     bottleneck, as they share the WAN link in netns mode.
//
// A byte stream cannot lose packets. A loss event (per 1448-byte segment, probability --loss) holds
// the chunk that carries it, and everything behind it on that connection, for one round trip
// (2 x delay + jitter): roughly what a fast retransmit costs the receiver. The relay terminates
// TCP, so the ranks' congestion control never sees the long pipe; a full queue stops the relay
// from reading (back-pressure) instead of dropping. Less faithful than xsite-wanem: see
// docs/launcher.md.
//
// --forward LISTEN=DEST adds a static forward (site 0 -> site 1 direction on the way in, the
// reverse on the way back); that is how the tests measure the relay alone.
// One thread, ppoll() with a nanosecond timeout, the last stretch before a delivery on the clock.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../wanem/link_model.h"

namespace xsite::wanrelay {
namespace {

using wanem::LinkModel;
using wanem::LinkParams;

constexpr const char* kProg = "xsite-wanrelay";
constexpr size_t kChunk = 64 * 1024;      // bytes read (and admitted to the model) at once
constexpr int kMss = 1448;                // segment payload, for loss and header overhead
constexpr int kHeaderBytes = 52;          // IP + TCP (timestamps) per segment: rate counts IP bytes
constexpr int64_t kSpinNs = 100 * 1000;   // the last stretch before a delivery: on the clock
constexpr size_t kMaxOutBuf = 4u << 20;   // stop reading when the receiver does not keep up
constexpr uint32_t kMaxStoreMessage = 64u << 20;  // the store's limit: larger means "not a store"
constexpr uint8_t kStoreSet = 1, kStoreOk = 0;

volatile sig_atomic_t g_stop = 0;
void onSignal(int) { g_stop = 1; }

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

sockaddr_in parseAddr(const std::string& s) {
  size_t c = s.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (c == std::string::npos || inet_pton(AF_INET, s.substr(0, c).c_str(), &a.sin_addr) != 1)
    throw Error("not an IPv4 address:port: " + s);
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(s.c_str() + c + 1)));
  return a;
}

std::string addrText(const sockaddr_in& a) {
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, b, sizeof(b));
  return std::string(b) + ":" + std::to_string(ntohs(a.sin_port));
}


int listenOn(const sockaddr_in& a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 1024) != 0) {
    std::string e = std::strerror(errno);
    close(fd);
    throw Error("cannot listen on " + addrText(a) + ": " + e);
  }
  return fd;
}

sockaddr_in localOf(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return a;
}

// Starts a non-blocking connect; -1 on an immediate failure.
int startConnect(const sockaddr_in& a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// ---- the relay --------------------------------------------------------------------------------

struct Link {  // one direction between two sites
  int from = 0, to = 0;
  std::unique_ptr<LinkModel> model;
  int64_t queueBytes = 0;
  uint64_t bytes = 0, chunks = 0, lossEvents = 0, stalls = 0, conns = 0;
  double maxBacklog = 0;
};

struct Chunk {
  int64_t deliverNs;
  std::string data;
};

struct Dir {
  Link* link = nullptr;
  std::deque<Chunk> pending;  // admitted, not yet delivered
  std::string out;            // delivered, not yet written to the destination socket
  size_t inflight = 0;        // bytes in `pending`
  int64_t lastDelivery = 0;   // per connection: a stalled chunk holds back what follows
  bool eofRead = false, eofSent = false;
};

struct Conn {
  int a = -1, b = -1;  // a: accepted from the connecting rank; b: to the destination
  bool bConnected = false;
  sockaddr_in dest{};
  int64_t retryAt = 0, giveUpAt = 0;
  Dir up, down;  // up: a -> b, down: b -> a
  bool dead = false;
};

struct Forward {  // a relay port: connections to it go from site `from` to `dest` in site `to`
  int fd;
  int from, to;
  sockaddr_in dest;
};

struct Gateway {  // the store as site `site` sees it
  int site;
  int listenFd;
  int port;
};

struct GwConn {
  int site;
  int c = -1, u = -1;  // c: the rank; u: the real store
  bool uConnected = false, dead = false;
  // Who spoke first told: the store's job-secret challenge (xsite's protocol), or the client
  // (another program's own rendezvous, passed on as it is).
  bool known = false, raw = false;
  size_t cSkip = 0, uSkip = 0;  // bytes of the secret handshake still to pass on unread
  int64_t retryAt = 0, giveUpAt = 0;
  std::string cin, uin, cout, uout;
};

struct Options {
  LinkParams p;
  bool queueSet = false;
  uint64_t seed = 1;
  std::vector<std::pair<int, std::string>> siteIps;
  std::string relayIp = "127.10.254.1";
  std::string store;
  std::vector<std::pair<std::string, std::string>> forwards;
  bool stats = false, dieWithParent = false;
  int readyFd = -1;
};

class Relay {
 public:
  explicit Relay(const Options& o) : o_(o), rng_(o.seed * 7919 + 1) {
    rttPenaltyNs_ = static_cast<int64_t>((2 * o.p.delay_ms + o.p.jitter_ms) * 1e6);
    keep_ = 1.0 - o.p.loss_pct / 100.0;
    LinkParams lp = o.p;
    lp.loss_pct = 0;  // loss is per connection here (see the top of the file)
    if (!o.queueSet) lp.queue_bytes = wanem::defaultQueueBytes(lp.rate_mbit, 2 * (lp.delay_ms + lp.jitter_ms));
    int maxSite = 1;
    for (auto& [s, ip] : o.siteIps) maxSite = std::max(maxSite, s);
    nSites_ = maxSite + 1;
    links_.resize(static_cast<size_t>(nSites_ * nSites_));
    uint64_t seed = o.seed;
    for (int a = 0; a < nSites_; ++a)
      for (int b = 0; b < nSites_; ++b) {
        Link& l = links_[static_cast<size_t>(a * nSites_ + b)];
        l.from = a;
        l.to = b;
        l.model = std::make_unique<LinkModel>(lp, seed++);
        l.queueBytes = lp.queue_bytes;
      }
    // Bytes a connection may have admitted and not yet delivered: a window of one bandwidth-delay
    // product plus the queue, so a stalled connection throttles itself as TCP would.
    const double bdp = lp.rate_mbit > 0 ? lp.rate_mbit * 1e6 / 8 * 2 * (lp.delay_ms + lp.jitter_ms) / 1e3
                                        : 64e6;
    connWindow_ = static_cast<size_t>(std::max(512e3, bdp + static_cast<double>(lp.queue_bytes)));
    relayAddr_ = parseAddr(o.relayIp + ":0");
    for (auto& [s, ip] : o.siteIps) siteIp_[ip] = s;
    for (auto& [l, d] : o.forwards) forwards_.push_back(Forward{listenOn(parseAddr(l)), 0, 1, parseAddr(d)});
    if (!o.store.empty()) {
      storeAddr_ = parseAddr(o.store);
      for (auto& [s, ip] : o.siteIps) {
        if (s == 0) continue;
        int fd = listenOn(parseAddr("127.0.0.1:0"));
        gateways_.push_back(Gateway{s, fd, ntohs(localOf(fd).sin_port)});
      }
    }
  }

  std::string readyLine() const {
    std::string r = "ready";
    for (auto& g : gateways_) r += " " + std::to_string(g.site) + "=" + std::to_string(g.port);
    for (auto& f : forwards_) r += " " + addrText(localOf(f.fd));
    return r + "\n";
  }

  void run();
  void printStats() const;

 private:
  Link& link(int a, int b) { return links_[static_cast<size_t>(a * nSites_ + b)]; }

  // Data path
  bool canRead(Conn& c, Dir& d, int64_t now, int64_t* wake);
  void readInto(Conn& c, int from, Dir& d, int64_t now);
  void deliver(Dir& d, int to, int64_t now);
  void acceptForward(const Forward& f, int64_t now);

  // Store gateway
  std::string forwardFor(int from, int to, const sockaddr_in& dest);
  std::string translate(const std::string& v, int viewer);
  void gwFromClient(GwConn& g);
  void gwFromStore(GwConn& g);

  Options o_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uni_{0.0, 1.0};
  double keep_ = 1.0;
  std::vector<int> lost_;  // the model's lost segments: always none (its loss is 0, see above)
  int64_t rttPenaltyNs_ = 0;
  int nSites_ = 2;
  size_t connWindow_ = 0;
  std::vector<Link> links_;
  sockaddr_in relayAddr_{}, storeAddr_{};
  std::map<std::string, int> siteIp_;                      // site address -> site
  std::vector<Forward> forwards_;                          // index: forward id
  std::map<int, size_t> forwardByPort_;                    // relay port -> forward id
  std::map<std::pair<int, std::string>, int> portFor_;     // (viewer site, dest) -> relay port
  std::vector<Gateway> gateways_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<GwConn>> gws_;
};

bool Relay::canRead(Conn& c, Dir& d, int64_t now, int64_t* wake) {
  if (d.eofRead || !c.bConnected || d.inflight >= connWindow_ || d.out.size() >= kMaxOutBuf) return false;
  Link& l = *d.link;
  const double backlog = l.model->backlogBytes(now);
  const double maxWire = kChunk + (kChunk / kMss + 1) * kHeaderBytes;
  if (backlog > 0 && backlog + maxWire > static_cast<double>(l.queueBytes)) {
    // The queue is full: wait until it has room for a chunk (back-pressure, not a drop).
    const double ns = (backlog + maxWire - static_cast<double>(l.queueBytes)) * 8e3 / o_.p.rate_mbit;
    *wake = std::min(*wake, now + static_cast<int64_t>(ns) + 1);
    return false;
  }
  return true;
}

void Relay::readInto(Conn& c, int from, Dir& d, int64_t now) {
  char buf[kChunk];
  ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) c.dead = true;
    return;
  }
  Chunk ch;
  Link& l = *d.link;
  if (n == 0) {
    d.eofRead = true;  // the EOF crosses like data: after everything before it
    ch.deliverNs = std::max(d.lastDelivery, now + static_cast<int64_t>(o_.p.delay_ms * 1e6));
  } else {
    const int segs = static_cast<int>((n + kMss - 1) / kMss);
    int64_t at = 0;
    // canRead() left room in the queue for a whole chunk, so the model takes it.
    if (l.model->admit(now, n + static_cast<int64_t>(segs) * kHeaderBytes, segs, &at, &lost_) !=
        wanem::Verdict::kForward)
      throw Error("internal: the link model refused a chunk canRead() admitted");
    l.maxBacklog = std::max(l.maxBacklog, l.model->backlogBytes(now));
    if (keep_ < 1.0 && uni_(rng_) >= std::pow(keep_, segs)) {
      at += rttPenaltyNs_;  // a retransmission: this chunk, and what follows, one round trip late
      ++l.lossEvents;
    }
    ch.deliverNs = std::max(at, d.lastDelivery);
    ch.data.assign(buf, static_cast<size_t>(n));
    l.bytes += static_cast<uint64_t>(n);
    ++l.chunks;
    d.inflight += static_cast<size_t>(n);
  }
  d.lastDelivery = ch.deliverNs;
  d.pending.push_back(std::move(ch));
}

void Relay::deliver(Dir& d, int to, int64_t now) {
  while (!d.pending.empty() && d.pending.front().deliverNs <= now) {
    Chunk& ch = d.pending.front();
    if (ch.data.empty()) {
      if (d.out.empty() && !d.eofSent) {
        shutdown(to, SHUT_WR);
        d.eofSent = true;
      } else {
        break;  // the EOF waits for the bytes before it
      }
    } else {
      d.inflight -= ch.data.size();
      d.out += ch.data;
    }
    d.pending.pop_front();
  }
}

// A non-blocking connect() on `fd` has finished: true when it succeeded; else the socket is
// closed (fd = -1) and the next attempt is due 50 ms after `now`.
bool finishConnect(int& fd, int64_t& retryAt, int64_t now) {
  int err = 0;
  socklen_t el = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err == 0) return true;
  close(fd);
  fd = -1;
  retryAt = now + 50'000'000;
  return false;
}

bool pumpIn(int fd, std::string& into, bool* dead) {
  char buf[65536];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n > 0) {
    into.append(buf, static_cast<size_t>(n));
    return true;
  }
  if (n == 0 || (errno != EAGAIN && errno != EINTR)) *dead = true;
  return false;
}

void pumpOut(int fd, std::string& from, bool* dead) {
  while (!from.empty()) {
    ssize_t n = send(fd, from.data(), from.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) *dead = true;
      return;
    }
    from.erase(0, static_cast<size_t>(n));
  }
}

void Relay::acceptForward(const Forward& f, int64_t now) {
  int fd;
  while ((fd = accept4(f.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Conn>();
    c->a = fd;
    c->dest = f.dest;
    c->up.link = &link(f.from, f.to);
    c->down.link = &link(f.to, f.from);
    ++c->up.link->conns;
    c->giveUpAt = now + 30'000'000'000LL;
    conns_.push_back(std::move(c));
  }
}

// The relay port that takes connections from site `from` to `dest` (in site `to`).
std::string Relay::forwardFor(int from, int to, const sockaddr_in& dest) {
  auto key = std::make_pair(from, addrText(dest));
  auto it = portFor_.find(key);
  if (it == portFor_.end()) {
    int fd = listenOn(relayAddr_);
    int port = ntohs(localOf(fd).sin_port);
    forwardByPort_[port] = forwards_.size();
    forwards_.push_back(Forward{fd, from, to, dest});
    it = portFor_.emplace(key, port).first;
    if (o_.stats)
      fprintf(stderr, "%s: site %d reaches %s (site %d) at %s:%d\n", kProg, from,
              key.second.c_str(), to, o_.relayIp.c_str(), port);
  }
  return o_.relayIp + ":" + std::to_string(it->second);
}

// Every "IP:PORT" of a site address or a relay port in `v`, as a rank of site `viewer` must
// dial it: the address itself within a site, a relay port across sites.
std::string Relay::translate(const std::string& v, int viewer) {
  bool any = v.find(o_.relayIp) != std::string::npos;
  for (auto it = siteIp_.begin(); !any && it != siteIp_.end(); ++it) any = v.find(it->first) != std::string::npos;
  if (!any) return v;
  std::string out;
  size_t i = 0, nextColon = v.find(':');
  while (i < v.size()) {
    bool done = false;
    if (nextColon != std::string::npos && nextColon < i) nextColon = v.find(':', i);
    if (i == 0 || !(isdigit(static_cast<unsigned char>(v[i - 1])) || v[i - 1] == '.')) {
      size_t colon = nextColon;
      size_t end = colon == std::string::npos ? colon : colon + 1;
      while (end != std::string::npos && end < v.size() && isdigit(static_cast<unsigned char>(v[end]))) ++end;
      if (colon != std::string::npos && end > colon + 1 && colon - i <= 15) {
        std::string ip = v.substr(i, colon - i);
        int port = std::atoi(v.substr(colon + 1, end - colon - 1).c_str());
        int to = -1;
        sockaddr_in dest{};
        if (auto s = siteIp_.find(ip); s != siteIp_.end()) {
          to = s->second;
          dest = parseAddr(v.substr(i, end - i));
        } else if (ip == o_.relayIp && forwardByPort_.count(port)) {
          const Forward& f = forwards_[forwardByPort_[port]];
          to = f.to;
          dest = f.dest;
        }
        if (to >= 0) {
          out += to == viewer ? addrText(dest) : forwardFor(viewer, to, dest);
          i = end;
          done = true;
        }
      }
    }
    if (!done) out += v[i++];
  }
  return out;
}

uint32_t getU32(const std::string& b, size_t pos) {
  uint32_t v;
  memcpy(&v, b.data() + pos, 4);
  return v;
}
void putU32(std::string& b, uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }

// Takes every whole length-prefixed message off `in`, lets `rewrite` change it, and appends it,
// prefixed with its new length, to `out`. False when a message announces more than the store's
// limit: not the store's protocol, and the connection is to be dropped. Lengths from the wire are
// added in size_t (in 32 bits, 4 + 0xFFFFFFFC wrapped to 0 and this loop never ended).
template <class F>
bool reframe(std::string& in, std::string& out, F rewrite) {
  size_t pos = 0;
  while (in.size() - pos >= 4) {
    const size_t len = getU32(in, pos);
    if (len > kMaxStoreMessage) {
      in.erase(0, pos);
      return false;
    }
    if (in.size() - pos - 4 < len) break;
    std::string msg = in.substr(pos + 4, len);
    pos += 4 + len;
    rewrite(msg);
    putU32(out, static_cast<uint32_t>(msg.size()));
    out += msg;
  }
  in.erase(0, pos);
  return true;
}

// The job-secret handshake (src/bootstrap/auth.h) that opens an xsite store connection: the
// store's challenge and proof, the client's response. The gateway passes it on untouched.
constexpr uint32_t kAuthMagic = 0x58534131;  // "XSA1"
constexpr size_t kAuthChallengeBytes = 24, kAuthResponseBytes = 48, kAuthProofBytes = 32;

void passHandshake(std::string& in, std::string& out, size_t& skip) {
  const size_t n = std::min(skip, in.size());
  out.append(in, 0, n);
  in.erase(0, n);
  skip -= n;
}

// A gateway connection whose store messages announce more than the store takes: dropped.
void dropOversized(GwConn& g, const char* from, const std::string& in) {
  fprintf(stderr,
          "%s: store gateway of site %d: dropping a connection: %s announced a %" PRIu32
          "-byte message, past the store's limit of %" PRIu32 " bytes\n",
          kProg, g.site, from, getU32(in, 0), kMaxStoreMessage);
  g.dead = true;
}

// Requests of a rank of site g.site to the store: a set's value is stored as site 0 sees it.
void Relay::gwFromClient(GwConn& g) {
  if (!g.known && !g.cin.empty()) {  // an xsite client waits for the store's challenge
    g.raw = true;
    g.known = true;
  }
  passHandshake(g.cin, g.uout, g.cSkip);
  if (g.cSkip > 0) return;
  if (g.raw) {  // not xsite's store protocol (another program's own rendezvous): pass it on
    g.uout += g.cin;
    g.cin.clear();
    return;
  }
  const bool ok = reframe(g.cin, g.uout, [&](std::string& msg) {
    if (msg.size() < 5 || static_cast<uint8_t>(msg[0]) != kStoreSet) return;
    const uint32_t kl = getU32(msg, 1);
    if (5 + size_t{kl} + 4 > msg.size()) return;
    const uint32_t vl = getU32(msg, 5 + kl);
    if (9 + size_t{kl} + vl > msg.size()) return;
    std::string val = translate(msg.substr(9 + kl, vl), 0);
    msg = msg.substr(0, 5 + kl);
    putU32(msg, static_cast<uint32_t>(val.size()));
    msg += val;
  });
  if (!ok) dropOversized(g, "the rank", g.cin);
}

// Answers of the store: the values a wait returns, as site g.site sees them.
void Relay::gwFromStore(GwConn& g) {
  if (!g.known && g.uin.size() >= 4) {
    g.known = true;
    g.raw = getU32(g.uin, 0) != kAuthMagic;
    if (!g.raw) {
      g.uSkip = kAuthChallengeBytes + kAuthProofBytes;
      g.cSkip = kAuthResponseBytes;
    }
  }
  if (!g.known) return;
  passHandshake(g.uin, g.cout, g.uSkip);
  if (g.uSkip > 0) return;
  if (g.raw) {
    g.cout += g.uin;
    g.uin.clear();
    return;
  }
  const bool ok = reframe(g.uin, g.cout, [&](std::string& msg) {
    if (msg.size() < 5 || static_cast<uint8_t>(msg[0]) != kStoreOk) return;
    std::string nw = msg.substr(0, 5);
    const uint32_t n = getU32(msg, 1);
    size_t pos = 5;
    for (uint32_t k = 0; k < n; ++k) {
      if (pos + 4 > msg.size()) return;
      const uint32_t sl = getU32(msg, pos);
      if (pos + 4 + sl > msg.size()) return;
      std::string val = translate(msg.substr(pos + 4, sl), g.site);
      putU32(nw, static_cast<uint32_t>(val.size()));
      nw += val;
      pos += 4 + sl;
    }
    msg = nw;
  });
  if (!ok) dropOversized(g, "the store", g.uin);
}

void Relay::run() {
  enum Kind { kForwardL, kGatewayL, kConnA, kConnB, kGwC, kGwU };
  struct Ref {
    Kind kind;
    size_t idx;
  };
  std::vector<pollfd> pfds;
  std::vector<Ref> refs;
  while (!g_stop) {
    int64_t now = nowNs();
    int64_t wake = now + 1'000'000'000;
    // Deliveries due, writes, connects to retry.
    for (auto& cp : conns_) {
      Conn& c = *cp;
      if (c.dead) continue;
      if (c.b < 0 && now >= c.retryAt) {
        c.b = startConnect(c.dest);
        if (c.b < 0) c.retryAt = now + 50'000'000;
      }
      if (!c.bConnected) {
        if (c.b < 0 && now > c.giveUpAt) c.dead = true;
        wake = std::min(wake, c.retryAt);
        continue;
      }
      deliver(c.up, c.b, now);
      deliver(c.down, c.a, now);
      pumpOut(c.b, c.up.out, &c.dead);
      pumpOut(c.a, c.down.out, &c.dead);
      deliver(c.up, c.b, now);  // an EOF behind bytes just written
      deliver(c.down, c.a, now);
      if (!c.up.pending.empty()) wake = std::min(wake, c.up.pending.front().deliverNs);
      if (!c.down.pending.empty()) wake = std::min(wake, c.down.pending.front().deliverNs);
      if (c.up.eofSent && c.down.eofSent) c.dead = true;
    }
    for (auto& gp : gws_) {
      GwConn& g = *gp;
      if (g.dead || g.u >= 0 || now < g.retryAt) continue;
      g.u = startConnect(storeAddr_);
      if (g.u < 0) g.retryAt = now + 50'000'000;
    }
    // Reap.
    for (auto& cp : conns_)
      if (cp->dead) {
        if (cp->a >= 0) close(cp->a);
        if (cp->b >= 0) close(cp->b);
      }
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](auto& c) { return c->dead; }), conns_.end());
    for (auto& gp : gws_)
      if (gp->dead) {
        if (gp->c >= 0) close(gp->c);
        if (gp->u >= 0) close(gp->u);
      }
    gws_.erase(std::remove_if(gws_.begin(), gws_.end(), [](auto& g) { return g->dead; }), gws_.end());

    pfds.clear();
    refs.clear();
    for (size_t i = 0; i < forwards_.size(); ++i) {
      pfds.push_back({forwards_[i].fd, POLLIN, 0});
      refs.push_back({kForwardL, i});
    }
    for (size_t i = 0; i < gateways_.size(); ++i) {
      pfds.push_back({gateways_[i].listenFd, POLLIN, 0});
      refs.push_back({kGatewayL, i});
    }
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = *conns_[i];
      short ea = 0, eb = 0;
      if (c.bConnected) {
        if (canRead(c, c.up, now, &wake)) ea |= POLLIN;
        if (canRead(c, c.down, now, &wake)) eb |= POLLIN;
        if (!c.down.out.empty()) ea |= POLLOUT;
        if (!c.up.out.empty()) eb |= POLLOUT;
      } else if (c.b >= 0) {
        eb |= POLLOUT;
      }
      // A socket nothing is asked of is left out (poll ignores negative fds): a half-closed
      // one would report POLLHUP forever.
      pfds.push_back({ea ? c.a : -1, ea, 0});
      refs.push_back({kConnA, i});
      if (c.b >= 0) {
        pfds.push_back({eb ? c.b : -1, eb, 0});
        refs.push_back({kConnB, i});
      }
    }
    for (size_t i = 0; i < gws_.size(); ++i) {
      GwConn& g = *gws_[i];
      pfds.push_back({g.c, static_cast<short>(POLLIN | (g.cout.empty() ? 0 : POLLOUT)), 0});
      refs.push_back({kGwC, i});
      if (g.u >= 0) {
        short e = g.uConnected ? static_cast<short>(POLLIN | (g.uout.empty() ? 0 : POLLOUT)) : POLLOUT;
        pfds.push_back({g.u, e, 0});
        refs.push_back({kGwU, i});
      } else {
        wake = std::min(wake, g.retryAt);
      }
    }
    // Sleep until an event or the next deadline; the last stretch on the clock.
    now = nowNs();
    int64_t left = wake - now;
    timespec ts{0, 0};
    if (left > kSpinNs) {
      left -= kSpinNs;
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
    }
    int r = ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    if (r < 0 && errno != EINTR) throw Error(std::string("ppoll: ") + std::strerror(errno));
    now = nowNs();
    for (size_t k = 0; r > 0 && k < pfds.size(); ++k) {
      const short rev = pfds[k].revents;
      if (!rev) continue;
      const Ref ref = refs[k];
      if (ref.kind == kForwardL) {
        acceptForward(forwards_[ref.idx], now);
      } else if (ref.kind == kGatewayL) {
        int fd;
        while ((fd = accept4(gateways_[ref.idx].listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          auto g = std::make_unique<GwConn>();
          g->site = gateways_[ref.idx].site;
          g->c = fd;
          gws_.push_back(std::move(g));
        }
      } else if (ref.kind == kConnA || ref.kind == kConnB) {
        Conn& c = *conns_[ref.idx];
        if (c.dead) continue;
        if (ref.kind == kConnB && !c.bConnected) {  // not listening (yet): retried until give-up
          c.bConnected = finishConnect(c.b, c.retryAt, now);
          continue;
        }
        const bool isA = ref.kind == kConnA;
        Dir& in = isA ? c.up : c.down;
        Dir& out = isA ? c.down : c.up;
        // Checked again: an earlier connection may have filled the shared queue since.
        int64_t ignored = 0;
        if ((rev & (POLLIN | POLLHUP | POLLERR)) && (pfds[k].events & POLLIN)) {
          if (canRead(c, in, now, &ignored)) readInto(c, isA ? c.a : c.b, in, now);
        } else if (rev & POLLERR) {
          c.dead = true;
        }
        if (rev & POLLOUT) pumpOut(isA ? c.a : c.b, out.out, &c.dead);
      } else {
        GwConn& g = *gws_[ref.idx];
        if (g.dead) continue;
        if (ref.kind == kGwC) {
          if (rev & (POLLIN | POLLHUP | POLLERR)) {
            if (pumpIn(g.c, g.cin, &g.dead)) gwFromClient(g);
          }
          if (rev & POLLOUT) pumpOut(g.c, g.cout, &g.dead);
        } else if (!g.uConnected) {  // rank 0 may not serve the store yet: retried
          g.uConnected = finishConnect(g.u, g.retryAt, now);
        } else {
          if (rev & (POLLIN | POLLHUP | POLLERR)) {
            if (pumpIn(g.u, g.uin, &g.dead)) gwFromStore(g);
          }
          if (rev & POLLOUT) pumpOut(g.u, g.uout, &g.dead);
        }
        if (g.uConnected && !g.uout.empty()) pumpOut(g.u, g.uout, &g.dead);
        if (!g.cout.empty()) pumpOut(g.c, g.cout, &g.dead);
      }
    }
    // The last stretch before a delivery: spin (the loop top delivers).
    if (r == 0) {
      while (nowNs() < wake && !g_stop) {
      }
    }
  }
}

void Relay::printStats() const {
  for (const Link& l : links_) {
    if (l.chunks == 0 && l.conns == 0) continue;
    fprintf(stderr,
            "%s: site %d -> site %d: %" PRIu64 " connections, %" PRIu64 " bytes in %" PRIu64
            " chunks, %" PRIu64 " loss events, largest queue %.0f bytes\n",
            kProg, l.from, l.to, l.conns, l.bytes, l.chunks, l.lossEvents, l.maxBacklog);
  }
}

void usage(FILE* f) {
  fprintf(f,
          "usage: %s [--delay MS] [--rate MBIT] [--loss PCT] [--jitter MS] [--queue KB] [--seed N]\n"
          "                      [--site-ip S=IP ...] [--relay-ip IP] [--store HOST:PORT]\n"
          "                      [--forward LISTEN_IP:PORT=DEST_IP:PORT ...]\n"
          "                      [--stats] [--ready-fd FD] [--die-with-parent]\n"
          "The user-space TCP relay of xsite-run's loopback mode (see docs/launcher.md).\n"
          "  --site-ip S=IP   site S's ranks listen on IP (xsite-run: 127.10.S.1)\n"
          "  --relay-ip IP    the relay's ports for connections across sites (127.10.254.1)\n"
          "  --store H:P      the rendezvous store rank 0 serves; a gateway port per site > 0\n"
          "  --forward L=D    a static forward, site 0 -> 1 on the way to D\n"
          "  --ready-fd FD    write \"ready [S=GATEWAYPORT]... [FORWARD]...\\n\" to FD once listening\n",
          kProg);
}

double number(const std::string& flag, const char* v) {
  char* end = nullptr;
  double x = std::strtod(v, &end);
  if (end == v || *end || !std::isfinite(x) || x < 0) throw Error(flag + ": not a number >= 0: " + v);
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "-h" || f == "--help") {
      usage(stdout);
      exit(0);
    }
    if (f == "--stats") { o.stats = true; continue; }
    if (f == "--die-with-parent") { o.dieWithParent = true; continue; }
    if (i + 1 >= argc) throw Error(f + ": missing value");
    const char* v = argv[++i];
    if (f == "--delay") o.p.delay_ms = number(f, v);
    else if (f == "--rate") o.p.rate_mbit = number(f, v);
    else if (f == "--jitter") o.p.jitter_ms = number(f, v);
    else if (f == "--loss") {
      o.p.loss_pct = number(f, v);
      if (o.p.loss_pct >= 100) throw Error("--loss must be < 100");
    } else if (f == "--queue") {
      o.p.queue_bytes = static_cast<int64_t>(number(f, v) * 1000);
      o.queueSet = true;
    } else if (f == "--seed") o.seed = static_cast<uint64_t>(number(f, v));
    else if (f == "--ready-fd") o.readyFd = static_cast<int>(number(f, v));
    else if (f == "--relay-ip") o.relayIp = v;
    else if (f == "--store") o.store = v;
    else if (f == "--site-ip" || f == "--forward") {
      std::string s = v;
      size_t eq = s.find('=');
      if (eq == std::string::npos) throw Error(f + ": expected X=Y, got " + s);
      if (f == "--site-ip") o.siteIps.emplace_back(static_cast<int>(number(f, s.substr(0, eq).c_str())), s.substr(eq + 1));
      else o.forwards.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    } else {
      throw Error("unknown flag " + f);
    }
  }
  if (o.siteIps.empty() && o.forwards.empty()) throw Error("nothing to relay: give --site-ip or --forward");
  return o;
}

}  // namespace
}  // namespace xsite::wanrelay

int main(int argc, char** argv) {
  using namespace xsite::wanrelay;
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const Error& e) {
    fprintf(stderr, "%s: %s\n", kProg, e.what());
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = onSignal;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  if (o.dieWithParent) prctl(PR_SET_PDEATHSIG, SIGTERM);
  prctl(PR_SET_TIMERSLACK, 1UL);
  try {
    Relay relay(o);
    std::string ready = relay.readyLine();
    if (o.stats)
      fprintf(stderr, "%s: delay %g ms, jitter %g ms, rate %g Mbit/s, loss %g%%, %s", kProg, o.p.delay_ms,
              o.p.jitter_ms, o.p.rate_mbit, o.p.loss_pct, ready.c_str());
    if (o.readyFd >= 0) {
      (void)!write(o.readyFd, ready.data(), ready.size());
      close(o.readyFd);
    } else {
      fputs(ready.c_str(), stdout);
      fflush(stdout);
    }
    relay.run();
    if (o.stats) relay.printStats();
  } catch (const Error& e) {
    fprintf(stderr, "%s: %s\n", kProg, e.what());
    return 1;
  }
  return 0;
}
