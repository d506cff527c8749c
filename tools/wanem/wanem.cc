// xsite-wanem: a user-space WAN link emulator between two TUN devices.
//
// The kernel here has no netem, so xsite-run joins two site routers through a pair of TUN devices
// (one in each router's network namespace) and this program forwards the IP packets between them,
// imposing per direction the delay, jitter, rate, drop-tail queue and loss of link_model.h.
// TUN offloads (virtio_net_hdr, TSO) are on, so a 64 KB TCP GSO super-packet crosses as one packet
// with its header passed through unchanged: several Gbit/s fit on a small machine.
// One thread per direction: it waits in ppoll() for its source TUN or its next delivery time.
// See docs/launcher.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>  // before the linux/ headers: it defines struct ifreq
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "link_model.h"

namespace xsite::wanem {
namespace {

constexpr const char* kProg = "xsite-wanem";

// struct virtio_net_hdr of <linux/virtio_net.h> (a header C++ cannot include: a member is
// named `class`), in the host's byte order as TUN uses it.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoEcn = 0x80;
constexpr size_t kVnetHdr = sizeof(VnetHdr);
static_assert(kVnetHdr == 10, "virtio_net_hdr is 10 bytes");

constexpr size_t kMaxFrame = 256 * 1024;        // vnet header + the largest GSO packet, with margin
constexpr size_t kSmallBuf = 2048;              // pooled buffers: small ones for ordinary packets
constexpr int kReadBatch = 64;                  // packets read per wake-up before delivering again
constexpr int64_t kEarlyNs = 30 * 1000;         // deliver this much early rather than sleep again
constexpr int64_t kSpinNs = 0;                  // the last stretch before a delivery: on the clock
constexpr int64_t kMaxWakeLateNs = 500 * 1000;  // bound on the learned wake-up lateness
constexpr int kRealtimePriority = 10;           // SCHED_FIFO priority of the forwarding threads

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

int64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---- command line -------------------------------------------------------------------------

struct Endpoint {
  std::string netns;  // empty: this process's namespace
  std::string dev;
};

struct Options {
  Endpoint a, b;
  LinkParams dir[2];  // [0] a->b, [1] b->a
  bool queue_set[2] = {false, false};
  uint64_t seed = 1;
  bool stats = false;
  int ready_fd = -1;
  bool die_with_parent = false;
  bool realtime = true;
  bool whole_packet_loss = false;
};

const char kUsage[] =
    "usage: xsite-wanem --a NETNS:DEV --b NETNS:DEV [--delay MS] [--rate MBIT] [--loss PCT]\n"
    "                   [--jitter MS] [--queue KB] [--a2b-OPT V] [--b2a-OPT V] [--seed N]\n"
    "                   [--stats] [--ready-fd FD] [--die-with-parent]\n"
    "\n"
    "Forwards IP packets between two existing TUN devices (ip tuntap add dev DEV mode tun\n"
    "vnet_hdr), each in its network namespace (/var/run/netns/NETNS; 'DEV' alone: this one),\n"
    "and imposes per direction:\n"
    "  --delay MS    one-way delay, fractional (default 0)\n"
    "  --jitter MS   uniform random extra delay in [0, MS), never reordering (default 0)\n"
    "  --rate MBIT   bottleneck rate in Mbit/s of IP bytes; 0: unlimited (default 0)\n"
    "  --queue KB    drop-tail limit on bytes waiting for serialization, 1 KB = 1000 bytes\n"
    "                (default: 2 x rate x 2 x (delay + jitter), at least 1000 KB)\n"
    "  --loss PCT    random loss per segment, percent (default 0); the other segments of a GSO\n"
    "                packet go on, as on a wire where each segment is a packet of its own\n"
    "  --whole-packet-loss  a lost segment takes its whole GSO packet (up to 64 KB) with it, as\n"
    "                netem does on a sending host with TSO: bursts of loss\n"
    "  --a2b-delay, --b2a-rate, ...: the same for one direction only (a2b: packets a -> b)\n"
    "  --seed N      seed of the loss and jitter generators (default 1)\n"
    "  --stats       print per-direction counters on exit (and the settings at start)\n"
    "  --ready-fd FD write \"ready\\n\" to FD and close it once both devices are attached\n"
    "  --die-with-parent  exit when the parent process dies\n"
    "  --no-realtime do not run the forwarding threads as SCHED_FIFO (by default they do when\n"
    "                allowed, so that packets leave on time on a loaded machine)\n"
    "SIGINT / SIGTERM / SIGHUP exit cleanly (status 0).\n";

[[noreturn]] void usageError(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n(try %s --help)\n", kProg, msg.c_str(), kProg);
  std::exit(2);
}

double parseNumber(const std::string& flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || errno != 0 || !std::isfinite(v)) {
    usageError(flag + ": '" + text + "' is not a number");
  }
  if (v < lo || v > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": %s is out of range [%g, %g]", text, lo, hi);
    usageError(flag + buf);
  }
  return v;
}

Endpoint parseEndpoint(const std::string& flag, const std::string& text) {
  Endpoint e;
  const size_t colon = text.find(':');
  e.dev = colon == std::string::npos ? text : text.substr(colon + 1);
  if (colon != std::string::npos) e.netns = text.substr(0, colon);
  if (e.dev.empty() || e.dev.size() >= IFNAMSIZ || e.dev.find('/') != std::string::npos) {
    usageError(flag + ": bad device name in '" + text + "' (expected NETNS:DEV)");
  }
  if (e.netns.find('/') != std::string::npos || (colon != std::string::npos && e.netns.empty())) {
    usageError(flag + ": bad namespace name in '" + text + "' (expected NETNS:DEV)");
  }
  return e;
}

// Sets one link knob (delay, jitter, rate, loss, queue) on the directions in `dirs`.
bool setKnob(Options& o, const std::string& flag, const std::string& knob, const char* v, bool a2b,
             bool b2a) {
  for (int d = 0; d < 2; ++d) {
    if ((d == 0 && !a2b) || (d == 1 && !b2a)) continue;
    LinkParams& p = o.dir[d];
    if (knob == "delay") {
      p.delay_ms = parseNumber(flag, v, 0, 60000);
    } else if (knob == "jitter") {
      p.jitter_ms = parseNumber(flag, v, 0, 60000);
    } else if (knob == "rate") {
      p.rate_mbit = parseNumber(flag, v, 0, 1e6);
      if (p.rate_mbit > 0 && p.rate_mbit < 0.01) usageError(flag + ": at least 0.01 Mbit/s");
    } else if (knob == "loss") {
      p.loss_pct = parseNumber(flag, v, 0, 100);
    } else if (knob == "queue") {
      p.queue_bytes = static_cast<int64_t>(parseNumber(flag, v, 1, 1e7) * 1000);
      o.queue_set[d] = true;
    } else {
      return false;
    }
  }
  return true;
}

Options parseOptions(int argc, char** argv) {
  Options o;
  bool have_a = false, have_b = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--stats") {
      o.stats = true;
      continue;
    }
    if (flag == "--die-with-parent") {
      o.die_with_parent = true;
      continue;
    }
    if (flag == "--no-realtime") {
      o.realtime = false;
      continue;
    }
    if (flag == "--whole-packet-loss") {
      o.whole_packet_loss = true;
      continue;
    }
    if (flag.rfind("--", 0) != 0) usageError("unexpected argument '" + flag + "'");
    if (i + 1 >= argc) usageError(flag + " needs a value");
    const char* v = argv[++i];
    if (flag == "--a") {
      o.a = parseEndpoint(flag, v);
      have_a = true;
    } else if (flag == "--b") {
      o.b = parseEndpoint(flag, v);
      have_b = true;
    } else if (flag == "--seed") {
      o.seed = static_cast<uint64_t>(parseNumber(flag, v, 0, 9007199254740992.0));
    } else if (flag == "--ready-fd") {
      o.ready_fd = static_cast<int>(parseNumber(flag, v, 0, 1 << 20));
    } else if (flag.rfind("--a2b-", 0) == 0) {
      if (!setKnob(o, flag, flag.substr(6), v, true, false)) usageError("unknown flag " + flag);
    } else if (flag.rfind("--b2a-", 0) == 0) {
      if (!setKnob(o, flag, flag.substr(6), v, false, true)) usageError("unknown flag " + flag);
    } else if (!setKnob(o, flag, flag.substr(2), v, true, true)) {
      usageError("unknown flag " + flag);
    }
  }
  if (!have_a || !have_b) usageError("--a and --b are required");
  if (o.a.netns == o.b.netns && o.a.dev == o.b.dev) usageError("--a and --b name the same device");
  for (int d = 0; d < 2; ++d) {
    LinkParams& p = o.dir[d];
    p.whole_packet_loss = o.whole_packet_loss;
    if (!o.queue_set[d]) {
      p.queue_bytes = defaultQueueBytes(p.rate_mbit, 2 * (p.delay_ms + p.jitter_ms));
    }
  }
  return o;
}

// ---- TUN devices ---------------------------------------------------------------------------

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string describe(const Endpoint& e) {
  return (e.netns.empty() ? "" : e.netns + ":") + e.dev;
}

// Attaches to the persistent TUN device e.dev inside namespace e.netns, offloads on.
Fd openTun(const Endpoint& e) {
  Fd home(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (home.get() < 0) throw Error(errnoText("open /proc/self/ns/net"));
  if (!e.netns.empty()) {
    const std::string path = "/var/run/netns/" + e.netns;
    Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.get() < 0) throw Error(errnoText("namespace " + e.netns + " (" + path + ")"));
    if (::setns(ns.get(), CLONE_NEWNET) != 0) throw Error(errnoText("setns " + e.netns));
  }
  // Back home whatever happens below: the caller's later opens must not land in e.netns.
  struct GoHome {
    int fd;
    ~GoHome() { (void)::setns(fd, CLONE_NEWNET); }
  } go_home{home.get()};

  const std::string where = describe(e);
  if (if_nametoindex(e.dev.c_str()) == 0) {
    throw Error("no device " + where +
                " (create it first: ip tuntap add dev DEV mode tun vnet_hdr, in the namespace)");
  }
  Fd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) throw Error(errnoText("open /dev/net/tun"));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
  std::strncpy(ifr.ifr_name, e.dev.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    throw Error(errnoText("attach to " + where + " (TUNSETIFF; is it a tun device, and free?)"));
  }
  int hdr = static_cast<int>(kVnetHdr);
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0) throw Error(errnoText("TUNSETVNETHDRSZ"));
  unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (::ioctl(fd.get(), TUNSETOFFLOAD, offload) != 0) {
    offload &= ~TUN_F_TSO_ECN;
    if (::ioctl(fd.get(), TUNSETOFFLOAD, offload) != 0) {
      throw Error(errnoText("TUNSETOFFLOAD on " + where));
    }
  }
  return fd;
}

// ---- packets -------------------------------------------------------------------------------

// What a packet read from a TUN is made of. A GSO packet of k segments carries its headers once
// but puts them on the wire k times.
struct Shape {
  int segments = 1;
  int64_t wire_bytes = 0;
  size_t ip_hdr = 0;   // bytes of the IP header (IPv6: fixed header only)
  size_t headers = 0;  // IP + transport header bytes, where each segment's payload begins
  bool tcp_gso = false;  // a TCP GSO packet that sliceSegments() can cut
};

Shape measure(const uint8_t* frame, size_t len) {
  Shape s;
  s.wire_bytes = static_cast<int64_t>(len - kVnetHdr);
  VnetHdr h;
  std::memcpy(&h, frame, kVnetHdr);
  const uint8_t* ip = frame + kVnetHdr;
  const size_t ip_len = len - kVnetHdr;
  if ((h.gso_type & ~kGsoEcn) == kGsoNone || h.gso_size == 0 || ip_len < 20) return s;
  size_t hdr = 0;
  uint8_t proto = 0;
  if ((ip[0] >> 4) == 4) {
    hdr = static_cast<size_t>(ip[0] & 0xf) * 4;
    proto = ip[9];
  } else if ((ip[0] >> 4) == 6 && ip_len >= 40) {
    hdr = 40;
    proto = ip[6];
  }
  s.ip_hdr = hdr;
  bool tcp = false;
  if (proto == 6 && hdr >= 20 && ip_len >= hdr + 20) {
    hdr += static_cast<size_t>(ip[hdr + 12] >> 4) * 4;
    tcp = true;
  } else if (proto == 17) {
    hdr += 8;
  } else if (h.hdr_len > 0 && h.hdr_len < ip_len) {
    hdr = h.hdr_len;
  }
  if (hdr == 0 || hdr >= ip_len) return s;
  const size_t payload = ip_len - hdr;
  const size_t k = (payload + h.gso_size - 1) / h.gso_size;
  s.segments = static_cast<int>(k);
  s.wire_bytes = static_cast<int64_t>(ip_len + (k - 1) * hdr);
  s.headers = hdr;
  s.tcp_gso = tcp && (h.flags & kNeedsCsum) != 0 && h.csum_start == s.ip_hdr;
  return s;
}

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void store16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// The one's-complement sum of `n` bytes as big-endian 16-bit words, not yet folded.
uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += load16(p + i);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1]) << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Writes to `out` (vnet header included) the packet made of segments [first, last) of the TCP GSO
// packet `frame` of shape `s`, as the kernel's own segmentation would cut it: the headers copied,
// the IP length (and IPv4 id and header checksum) and the TCP sequence number adjusted, CWR kept
// on the first segment only and FIN and PSH on the last only, and the TCP checksum field reset to
// the pseudo-header sum over the new length, which checksum offload completes. Returns its size.
size_t sliceSegments(const uint8_t* frame, size_t len, const Shape& s, int first, int last,
                     uint8_t* out) {
  VnetHdr h;
  std::memcpy(&h, frame, kVnetHdr);
  const size_t payload = len - kVnetHdr - s.headers;
  const size_t begin = static_cast<size_t>(first) * h.gso_size;
  const size_t end = std::min(payload, static_cast<size_t>(last) * h.gso_size);
  if (last - first == 1) {
    h.gso_type = kGsoNone;
    h.gso_size = 0;
  }
  std::memcpy(out, &h, kVnetHdr);
  uint8_t* ip = out + kVnetHdr;
  std::memcpy(ip, frame + kVnetHdr, s.headers);
  std::memcpy(ip + s.headers, frame + kVnetHdr + s.headers + begin, end - begin);
  const size_t ip_len = s.headers + (end - begin);
  uint8_t* tcp = ip + s.ip_hdr;
  const size_t tcp_len = ip_len - s.ip_hdr;
  uint32_t pseudo = 6 + static_cast<uint32_t>(tcp_len);
  if ((ip[0] >> 4) == 4) {
    store16(ip + 2, static_cast<uint32_t>(ip_len));
    store16(ip + 4, load16(ip + 4) + static_cast<uint32_t>(first));
    store16(ip + 10, 0);
    store16(ip + 10, static_cast<uint16_t>(~fold(sum16(ip, s.ip_hdr))));
    pseudo = sum16(ip + 12, 8, pseudo);
  } else {
    store16(ip + 4, static_cast<uint32_t>(ip_len - 40));
    pseudo = sum16(ip + 8, 32, pseudo);
  }
  uint32_t seq;
  std::memcpy(&seq, tcp + 4, 4);
  seq = htonl(ntohl(seq) + static_cast<uint32_t>(begin));
  std::memcpy(tcp + 4, &seq, 4);
  constexpr uint8_t kFin = 0x01, kPsh = 0x08, kCwr = 0x80;
  if (first > 0) tcp[13] &= static_cast<uint8_t>(~kCwr);
  if (last < s.segments) tcp[13] &= static_cast<uint8_t>(~(kFin | kPsh));
  store16(tcp + 16, fold(pseudo));
  return kVnetHdr + ip_len;
}

struct Counters {
  uint64_t rx_packets = 0, rx_bytes = 0, rx_segments = 0, gso_packets = 0;
  uint64_t tx_packets = 0, tx_bytes = 0;
  uint64_t loss_drops = 0, loss_segments = 0, loss_cut = 0, queue_drops = 0, write_errors = 0;
  int64_t late_sum_ns = 0, late_max_ns = 0;  // delivery time minus the model's delivery time
  double max_backlog = 0;
  size_t max_in_flight = 0;
};

// One direction: reads src, holds packets in a FIFO until their delivery time, writes dst.
class Direction {
 public:
  Direction(std::string name, int src, int dst, const LinkParams& p, uint64_t seed)
      : name_(std::move(name)),
        src_(src),
        dst_(dst),
        model_(p, seed),
        scratch_(kMaxFrame),
        cut_(kMaxFrame) {
    wake_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (wake_.get() < 0) throw Error(errnoText("eventfd"));
  }

  void stop() {
    stopping_ = true;
    const uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }

  // Runs until stop(); returns an error text, empty when none.
  std::string run(bool realtime) {
    (void)::prctl(PR_SET_TIMERSLACK, 1UL);  // wake up on time, not 50 us late
    if (realtime) {
      // A loaded machine (a build, 8 ranks on 2 cores) otherwise delays a wake-up by
      // milliseconds: the link would no longer be the link that was asked for.
      sched_param sp{};
      sp.sched_priority = kRealtimePriority;
      const int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
      if (err != 0) {
        std::fprintf(stderr,
                     "%s: warning: %s: SCHED_FIFO refused (%s); delays may run late "
                     "on a loaded machine\n",
                     kProg, name_.c_str(), std::strerror(err));
      }
    }
    calibrateWakeups();
    pollfd fds[2] = {{src_, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    while (!stopping_) {
      int64_t now = nowNs();
      if (!line_.empty() && line_.front().deliver - now <= kSpinNs + kEarlyNs) {
        // Due within the spin window: wait for it on the clock, the timer is too coarse.
        while (now < line_.front().deliver - kEarlyNs / 2) now = nowNs();
      }
      deliverDue(now);
      timespec ts{};
      timespec* timeout = nullptr;
      int64_t wake_at = 0;
      if (!line_.empty()) {
        // Ask to wake up earlier by the lateness that timer wake-ups have shown so far.
        wake_at = line_.front().deliver - wake_late_ns_ - kSpinNs;
        const int64_t wait = std::max<int64_t>(0, wake_at - now);
        ts.tv_sec = wait / 1000000000;
        ts.tv_nsec = wait % 1000000000;
        timeout = &ts;
      }
      const int n = ::ppoll(fds, 2, timeout, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errnoText("ppoll");
      }
      if (n == 0 && timeout != nullptr && wake_at > now) {
        // A timer wake-up: learn its lateness (moving average, bounded).
        const int64_t late =
            std::clamp<int64_t>(nowNs() - wake_at, -kMaxWakeLateNs, kMaxWakeLateNs);
        // Aim at kEarlyNs / 2 before the delivery time: inside the early window of deliverDue.
        wake_late_ns_ = std::clamp<int64_t>(
            wake_late_ns_ + (late + kEarlyNs / 2 - wake_late_ns_) / 8, 0, kMaxWakeLateNs);
      }
      if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        return "source device of " + name_ + " failed (deleted?)";
      }
      if (fds[0].revents & POLLIN) {
        std::string err = readBatch();
        if (!err.empty()) return err;
      }
    }
    return "";
  }

  const std::string& name() const { return name_; }
  const Counters& counters() const { return c_; }

 private:
  struct Packet {
    int64_t deliver;
    int64_t wire_bytes;
    std::vector<uint8_t> data;
  };

  // A first estimate of the timer lateness, so that the first packets leave on time too.
  void calibrateWakeups() {
    constexpr int kRounds = 16;
    int64_t sum = 0;
    for (int i = 0; i < kRounds; ++i) {
      const int64_t t = nowNs();
      timespec ts{0, 100 * 1000};
      ::ppoll(nullptr, 0, &ts, nullptr);
      sum += nowNs() - t - 100 * 1000;
    }
    wake_late_ns_ = std::clamp<int64_t>(sum / kRounds + kEarlyNs / 2, 0, kMaxWakeLateNs);
  }

  std::string readBatch() {
    for (int i = 0; i < kReadBatch; ++i) {
      const ssize_t n = ::read(src_, scratch_.data(), scratch_.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return "";
        return errnoText("read " + name_);
      }
      if (static_cast<size_t>(n) <= kVnetHdr) continue;
      const int64_t now = nowNs();
      const Shape shape = measure(scratch_.data(), static_cast<size_t>(n));
      ++c_.rx_packets;
      c_.rx_bytes += static_cast<uint64_t>(shape.wire_bytes);
      c_.rx_segments += static_cast<uint64_t>(shape.segments);
      if (shape.segments > 1) ++c_.gso_packets;
      int64_t deliver = 0;
      Verdict verdict = model_.admit(now, shape.wire_bytes, shape.segments, &deliver, &lost_);
      if (verdict == Verdict::kForward && !lost_.empty() && !shape.tcp_gso) {
        verdict = Verdict::kLossDrop;  // not a packet this program can cut: it goes whole
      }
      switch (verdict) {
        case Verdict::kQueueDrop:
          ++c_.queue_drops;
          continue;
        case Verdict::kLossDrop:
          ++c_.loss_drops;
          c_.loss_segments += static_cast<uint64_t>(shape.segments);
          continue;
        case Verdict::kForward:
          break;
      }
      c_.max_backlog = std::max(c_.max_backlog, model_.backlogBytes(now));
      if (lost_.empty()) {
        enqueue(deliver, shape.wire_bytes, scratch_.data(), static_cast<size_t>(n));
      } else {
        // Some segments of a GSO packet were lost: the runs between them go on, each a packet.
        ++c_.loss_cut;
        c_.loss_segments += lost_.size();
        lost_.push_back(shape.segments);
        int first = 0;
        for (int gap : lost_) {
          if (gap > first) {
            const size_t m = sliceSegments(scratch_.data(), static_cast<size_t>(n), shape, first,
                                           gap, cut_.data());
            enqueue(deliver, measure(cut_.data(), m).wire_bytes, cut_.data(), m);
          }
          first = gap + 1;
        }
      }
      deliverDue(now);
    }
    return "";
  }

  void enqueue(int64_t deliver, int64_t wire_bytes, const uint8_t* data, size_t n) {
    Packet p{deliver, wire_bytes, takeBuffer(n)};
    std::memcpy(p.data.data(), data, n);
    line_.push_back(std::move(p));
    c_.max_in_flight = std::max(c_.max_in_flight, line_.size());
  }

  void deliverDue(int64_t now) {
    while (!line_.empty() && line_.front().deliver <= now + kEarlyNs) {
      Packet& p = line_.front();
      // The virtio_net_hdr goes through unchanged: a GSO packet stays one packet.
      const ssize_t w = ::write(dst_, p.data.data(), p.data.size());
      if (w == static_cast<ssize_t>(p.data.size())) {
        ++c_.tx_packets;
        c_.tx_bytes += static_cast<uint64_t>(p.wire_bytes);
        const int64_t late = now - p.deliver;
        c_.late_sum_ns += late;
        c_.late_max_ns = std::max(c_.late_max_ns, late);
      } else {
        ++c_.write_errors;  // the device went down, or a full socket buffer: a drop
      }
      giveBuffer(std::move(p.data));
      line_.pop_front();
    }
  }

  // Buffers are recycled in two size classes so that small packets do not pin 64 KB each.
  std::vector<uint8_t> takeBuffer(size_t n) {
    auto& pool = n <= kSmallBuf ? small_ : big_;
    std::vector<uint8_t> b;
    if (!pool.empty()) {
      b = std::move(pool.back());
      pool.pop_back();
    }
    b.resize(n);
    return b;
  }

  void giveBuffer(std::vector<uint8_t>&& b) {
    auto& pool = b.capacity() <= kSmallBuf ? small_ : big_;
    if (pool.size() < 4096) pool.push_back(std::move(b));
  }

  std::string name_;
  int src_, dst_;
  LinkModel model_;
  Fd wake_;
  std::atomic<bool> stopping_{false};
  int64_t wake_late_ns_ = 0;  // how late ppoll() wakes up after its timeout, learned
  std::vector<uint8_t> scratch_;
  std::vector<uint8_t> cut_;  // one run of a GSO packet's segments, cut around lost ones
  std::vector<int> lost_;     // the model's lost segments of the packet in hand
  std::deque<Packet> line_;
  std::vector<std::vector<uint8_t>> small_, big_;
  Counters c_;
};

void printSettings(const char* name, const LinkParams& p) {
  std::fprintf(stderr,
               "%s: %s: delay %g ms, jitter %g ms, rate %g Mbit/s%s, queue %" PRId64
               " bytes, loss %g%% %s\n",
               kProg, name, p.delay_ms, p.jitter_ms, p.rate_mbit,
               p.rate_mbit > 0 ? "" : " (unlimited)", p.queue_bytes, p.loss_pct,
               p.whole_packet_loss ? "(whole GSO packets)" : "(per segment)");
}

void printStats(const Direction& d) {
  const Counters& c = d.counters();
  std::fprintf(stderr,
               "%s: %s: rx %" PRIu64 " packets (%" PRIu64 " segments, %" PRIu64 " GSO) %" PRIu64
               " bytes; tx %" PRIu64 " packets %" PRIu64 " bytes; lost %" PRIu64
               " segments (%" PRIu64 " whole packets, %" PRIu64 " cut); queue drops %" PRIu64
               ", write errors %" PRIu64
               "; max queue %.0f bytes, max in flight %zu packets; "
               "delivered late by %.1f us on average, %.1f us at most\n",
               kProg, d.name().c_str(), c.rx_packets, c.rx_segments, c.gso_packets, c.rx_bytes,
               c.tx_packets, c.tx_bytes, c.loss_segments, c.loss_drops, c.loss_cut, c.queue_drops,
               c.write_errors, c.max_backlog, c.max_in_flight,
               c.tx_packets ? static_cast<double>(c.late_sum_ns) / 1e3 / c.tx_packets : 0.0,
               static_cast<double>(c.late_max_ns) / 1e3);
}

int run(int argc, char** argv) {
  const Options o = parseOptions(argc, argv);

  // Signals are taken by sigwait() in the main thread only; the workers inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (o.die_with_parent) {
    const pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) return 0;  // the parent is already gone
  }

  Fd a, b;
  try {
    a = openTun(o.a);
    b = openTun(o.b);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
    return 1;
  }
  const std::string a2b = describe(o.a) + " -> " + describe(o.b);
  const std::string b2a = describe(o.b) + " -> " + describe(o.a);
  if (o.stats) {
    printSettings(a2b.c_str(), o.dir[0]);
    printSettings(b2a.c_str(), o.dir[1]);
  }
  Direction dirs[2] = {Direction(a2b, a.get(), b.get(), o.dir[0], o.seed * 2 + 1),
                       Direction(b2a, b.get(), a.get(), o.dir[1], o.seed * 2 + 2)};
  std::string errors[2];
  std::thread threads[2];
  for (int d = 0; d < 2; ++d) {
    threads[d] = std::thread([&, d] {
      errors[d] = dirs[d].run(o.realtime);
      if (!errors[d].empty()) ::kill(::getpid(), SIGUSR1);  // wakes the main thread
    });
  }
  if (o.ready_fd >= 0) {
    (void)!::write(o.ready_fd, "ready\n", 6);
    ::close(o.ready_fd);
  }
  int sig = 0;
  sigwait(&set, &sig);
  for (auto& d : dirs) d.stop();
  for (auto& t : threads) t.join();
  if (o.stats) {
    for (auto& d : dirs) printStats(d);
  }
  int rc = 0;
  for (auto& e : errors) {
    if (!e.empty()) {
      std::fprintf(stderr, "%s: error: %s\n", kProg, e.c_str());
      rc = 1;
    }
  }
  return rc;
}

}  // namespace
}  // namespace xsite::wanem

int main(int argc, char** argv) {
  return xsite::wanem::run(argc, argv);
}
