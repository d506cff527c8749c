// RAII file descriptors and the few TCP helpers the bootstrap and the TCP transport share.
// Setup calls throw xsite::Error(kSystem); data-path calls return Status.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "util/status.h"

namespace xsite {

class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept;
  void reset() noexcept;

 private:
  int fd_ = -1;
};

// An address in the form it crosses the wire (handles): family, port and address bytes, no
// pointers, the same on every host.
struct WireAddr {
  uint16_t family;    // AF_INET or AF_INET6 (0: none)
  uint16_t port;      // network byte order
  uint8_t bytes[16];  // in_addr (first 4 bytes) or in6_addr
};
static_assert(sizeof(WireAddr) == 20);

// An IPv4 or IPv6 socket address.
struct SockAddr {
  sockaddr_storage storage{};
  int family() const { return storage.ss_family; }
  socklen_t length() const;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  std::string toString() const;  // "10.0.0.1:1234", "[fd00::1]:1234"
  std::string ip() const;        // "10.0.0.1", "fd00::1"
  int port() const;
  void setPort(int port);
  bool loopback() const;         // 127.0.0.0/8 or ::1
  WireAddr wire() const;
  static SockAddr fromWire(const WireAddr& w);
  // The storage as the family's own type (no check of the family).
  const sockaddr_in& in4() const { return *reinterpret_cast<const sockaddr_in*>(&storage); }
  sockaddr_in& in4() { return *reinterpret_cast<sockaddr_in*>(&storage); }
  const sockaddr_in6& in6() const { return *reinterpret_cast<const sockaddr_in6*>(&storage); }
  sockaddr_in6& in6() { return *reinterpret_cast<sockaddr_in6*>(&storage); }
};

// "host:port", "[v6]:port", or a host alone (then defaultPort); a host is a name, dotted IPv4
// or an IPv6 address.
SockAddr parseSockAddr(const std::string& text, int defaultPort = -1);
SockAddr sockAddrOf(const std::string& ip, int port);

// Port 0: any free port. `prepare` runs on the socket before bind().
Fd tcpListen(const SockAddr& bindAddr, int backlog = 1024,
             const std::function<void(int fd)>& prepare = {});
SockAddr localAddr(int fd);
// Blocking connect with retries until the deadline (the peer may not be listening yet).
// `prepare` runs on each new socket before connect() (buffer sizes must be set before).
Fd tcpConnect(const SockAddr& to, std::chrono::steady_clock::time_point deadline,
              const std::function<void(int fd)>& prepare = {});
// A connect that does not wait, for callers that must not block (the NCCL plugin's connects, a
// WAN stream's re-dial): a non-blocking socket (`prepare` runs on it before connect()) on which
// the connect is started; poll it for POLLOUT, then socketError(). An invalid Fd, errno set,
// when the kernel failed it at once (ECONNREFUSED: nobody listens there).
Fd dialStart(const SockAddr& to, const std::function<void(int fd)>& prepare = {});
// The local IP the kernel would use to reach `to` (no packet is sent).
std::string routeSourceIp(const SockAddr& to);

void setNonBlocking(int fd, bool on);
void setNoDelay(int fd);
// SO_SNDBUF (send) or SO_RCVBUF; as root past net.core.*mem_max (SO_*BUFFORCE). Either turns
// the kernel's autotuning of that buffer off. False when the kernel refused both.
bool setBufferSize(int fd, bool send, int bytes);
// Both buffers; 0 leaves autotuning.
void setBufferSizes(int fd, int bytes);
// A dead path is noticed on a long-lived connection: keepalive probes an idle one (which also
// keeps a middlebox's idle timer from closing it), and data or probes unacknowledged for
// `userTimeout` fail it with ETIMEDOUT (TCP_USER_TIMEOUT). Zero leaves the kernel's defaults.
void setKeepAlive(int fd, std::chrono::milliseconds userTimeout);
// TCP_CONGESTION; false (errno set) when the kernel refuses the algorithm.
bool setCongestionControl(int fd, const std::string& algorithm);
std::string congestionControl(int fd);

// Non-blocking: reads what has arrived toward `want` bytes at `buf`, of which `got` were read
// before (and are counted on). kClosed: the peer closed the socket, or it failed.
enum class ReadProgress { kWaiting, kDone, kClosed };
ReadProgress readToward(int fd, void* buf, size_t want, size_t& got) noexcept;
// The socket's pending error (SO_ERROR, which reading clears), e.g. of a non-blocking connect.
int socketError(int fd) noexcept;

// Blocking full read/write with a deadline; kTimeout / kRemote (peer closed) / kSystem.
Status writeAll(int fd, const void* data, size_t n, std::chrono::steady_clock::time_point deadline);
Status readAll(int fd, void* data, size_t n, std::chrono::steady_clock::time_point deadline);

std::string errnoString(int err);
// This machine's host name ("" when unknown).
std::string hostName();
// Who shares this process's loopback interface: the same string in every process of this
// network namespace on this boot of this machine ("<boot id>/netns:<inode>").
std::string loopbackScope();
// 64 random bits from the operating system (job ids, connection nonces).
uint64_t randomNonce();

}  // namespace xsite
