#include "util/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

namespace xsite {

using Clock = std::chrono::steady_clock;

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}
int Fd::release() noexcept {
  int f = fd_;
  fd_ = -1;
  return f;
}
void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string errnoString(int err) { return std::string(strerror(err)); }

socklen_t SockAddr::length() const {
  return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string SockAddr::ip() const {
  char text[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET6)
    inet_ntop(AF_INET6, &in6().sin6_addr, text, sizeof(text));
  else
    inet_ntop(AF_INET, &in4().sin_addr, text, sizeof(text));
  return text;
}

std::string SockAddr::toString() const {
  return (family() == AF_INET6 ? "[" + ip() + "]" : ip()) + ":" + std::to_string(port());
}

int SockAddr::port() const {
  return ntohs(family() == AF_INET6 ? in6().sin6_port : in4().sin_port);
}

void SockAddr::setPort(int port) {
  const uint16_t p = htons(static_cast<uint16_t>(port));
  if (family() == AF_INET6)
    in6().sin6_port = p;
  else
    in4().sin_port = p;
}

bool SockAddr::loopback() const {
  if (family() == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&in6().sin6_addr);
  return (ntohl(in4().sin_addr.s_addr) >> 24) == 127;
}

WireAddr SockAddr::wire() const {
  WireAddr w{};
  w.family = static_cast<uint16_t>(family());
  w.port = htons(static_cast<uint16_t>(port()));
  if (family() == AF_INET6)
    std::memcpy(w.bytes, &in6().sin6_addr, 16);
  else
    std::memcpy(w.bytes, &in4().sin_addr, 4);
  return w;
}

SockAddr SockAddr::fromWire(const WireAddr& w) {
  SockAddr a;
  if (w.family == AF_INET6) {
    a.in6().sin6_family = AF_INET6;
    a.in6().sin6_port = w.port;
    std::memcpy(&a.in6().sin6_addr, w.bytes, 16);
  } else {
    a.in4().sin_family = AF_INET;
    a.in4().sin_port = w.port;
    std::memcpy(&a.in4().sin_addr, w.bytes, 4);
  }
  return a;
}

SockAddr sockAddrOf(const std::string& hostText, int port) {
  if (port < 0 || port > 65535)
    throw Error(ErrorCategory::kInvalidUsage, "port " + std::to_string(port) + " out of range");
  std::string host = hostText;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  SockAddr a;
  if (inet_pton(AF_INET, host.c_str(), &a.in4().sin_addr) == 1) {
    a.in4().sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &a.in6().sin6_addr) == 1) {
    a.in6().sin6_family = AF_INET6;
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr)
      throw Error(ErrorCategory::kInvalidUsage,
                  "cannot resolve host '" + host + "': " + gai_strerror(rc));
    const addrinfo* pick = res;  // IPv4 first where the name has both (what the others expect)
    for (const addrinfo* r = res; r; r = r->ai_next)
      if (r->ai_family == AF_INET) {
        pick = r;
        break;
      }
    std::memcpy(&a.storage, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
  }
  a.setPort(port);
  return a;
}

SockAddr parseSockAddr(const std::string& text, int defaultPort) {
  size_t colon = text.rfind(':');
  const bool bracketed = !text.empty() && text.front() == '[';
  const size_t close = text.find(']');
  // "[v6]:port" and "host:port" have a port; "[v6]" and a bare IPv6 address do not.
  const bool hasPort = colon != std::string::npos &&
                       (bracketed ? close != std::string::npos && colon == close + 1
                                  : text.find(':') == colon);
  if (!hasPort) {
    if (defaultPort < 0)
      throw Error(ErrorCategory::kInvalidUsage, "address '" + text + "' has no ':port'");
    return sockAddrOf(text, defaultPort);
  }
  std::string port = text.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535)
    throw Error(ErrorCategory::kInvalidUsage, "address '" + text + "' has a bad port");
  return sockAddrOf(text.substr(0, colon), static_cast<int>(p));
}

Fd tcpListen(const SockAddr& bindAddr, int backlog, const std::function<void(int fd)>& prepare) {
  Fd fd(::socket(bindAddr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw Error(ErrorCategory::kSystem, "socket(): " + errnoString(errno));
  if (prepare) prepare(fd.get());
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), bindAddr.get(), bindAddr.length()) != 0)
    throw Error(ErrorCategory::kSystem,
                "cannot bind " + bindAddr.toString() + ": " + errnoString(errno));
  if (::listen(fd.get(), backlog) != 0)
    throw Error(ErrorCategory::kSystem, "listen(): " + errnoString(errno));
  return fd;
}

SockAddr localAddr(int fd) {
  SockAddr a;
  socklen_t len = sizeof(a.storage);
  if (getsockname(fd, a.get(), &len) != 0)
    throw Error(ErrorCategory::kSystem, "getsockname(): " + errnoString(errno));
  return a;
}

Fd tcpConnect(const SockAddr& to, Clock::time_point deadline,
              const std::function<void(int fd)>& prepare) {
  int lastErr = 0;
  auto backoff = std::chrono::milliseconds(5);
  while (true) {
    Fd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) throw Error(ErrorCategory::kSystem, "socket(): " + errnoString(errno));
    if (prepare) prepare(fd.get());
    if (::connect(fd.get(), to.get(), to.length()) == 0) {
      setNoDelay(fd.get());
      return fd;
    }
    lastErr = errno;
    // EINTR: a signal (a profiler's timer) cut the wait short; the next try uses a new socket.
    if (lastErr != ECONNREFUSED && lastErr != ETIMEDOUT && lastErr != ENETUNREACH &&
        lastErr != EHOSTUNREACH && lastErr != EAGAIN && lastErr != ECONNRESET && lastErr != EINTR)
      throw Error(ErrorCategory::kSystem,
                  "connect to " + to.toString() + ": " + errnoString(lastErr));
    if (Clock::now() + backoff > deadline)
      throw Error(ErrorCategory::kTimeout,
                  "could not connect to " + to.toString() + " before the deadline (last error: " +
                      errnoString(lastErr) + ")");
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
  }
}

Fd dialStart(const SockAddr& to, const std::function<void(int fd)>& prepare) {
  Fd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return fd;
  if (prepare) prepare(fd.get());
  if (::connect(fd.get(), to.get(), to.length()) != 0 && errno != EINPROGRESS && errno != EINTR) {
    const int err = errno;
    fd.reset();
    errno = err;
  }
  return fd;
}

std::string routeSourceIp(const SockAddr& to) {
  Fd fd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw Error(ErrorCategory::kSystem, "socket(): " + errnoString(errno));
  if (::connect(fd.get(), to.get(), to.length()) != 0)
    throw Error(ErrorCategory::kSystem, "no route to " + to.toString() + ": " + errnoString(errno));
  return localAddr(fd.get()).ip();
}

void setNonBlocking(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}
void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
void setKeepAlive(int fd, std::chrono::milliseconds userTimeout) {
  if (userTimeout.count() <= 0) return;
  // Probes start after a third of the timeout idle (10 s at most: well under any middlebox's
  // idle timer), three of them spread over the rest.
  const int idle = static_cast<int>(std::clamp<int64_t>(userTimeout.count() / 3000, 1, 10));
  const int interval = std::max(1, idle / 2);
  const int count = 3;
  const unsigned timeout = static_cast<unsigned>(userTimeout.count());
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof(timeout));
}

bool setBufferSize(int fd, bool send, int bytes) {
  return setsockopt(fd, SOL_SOCKET, send ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0 ||
         setsockopt(fd, SOL_SOCKET, send ? SO_SNDBUF : SO_RCVBUF, &bytes, sizeof(bytes)) == 0;
}

void setBufferSizes(int fd, int bytes) {
  if (bytes <= 0) return;
  setBufferSize(fd, true, bytes);
  setBufferSize(fd, false, bytes);
}

bool setCongestionControl(int fd, const std::string& algorithm) {
  return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, algorithm.data(),
                    static_cast<socklen_t>(algorithm.size())) == 0;
}

std::string congestionControl(int fd) {
  char name[32] = {0};
  socklen_t len = sizeof(name) - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) return "?";
  return name;
}

namespace {
int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000));
}
}  // namespace

Status writeAll(int fd, const void* data, size_t n, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return Status(errno == EPIPE || errno == ECONNRESET ? ErrorCategory::kRemote
                                                          : ErrorCategory::kSystem,
                    "send: " + errnoString(errno));
    if (Clock::now() >= deadline) return Status(ErrorCategory::kTimeout, "send timed out");
    pollfd pfd{fd, POLLOUT, 0};
    ::poll(&pfd, 1, msLeft(deadline));
  }
  return Status::ok();
}

ReadProgress readToward(int fd, void* buf, size_t want, size_t& got) noexcept {
  while (got < want) {
    const ssize_t r = ::recv(fd, static_cast<char*>(buf) + got, want - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? ReadProgress::kWaiting
                                                               : ReadProgress::kClosed;
  }
  return ReadProgress::kDone;
}

int socketError(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

Status readAll(int fd, void* data, size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Status(ErrorCategory::kRemote, "connection closed by peer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return Status(errno == ECONNRESET ? ErrorCategory::kRemote : ErrorCategory::kSystem,
                    "recv: " + errnoString(errno));
    if (Clock::now() >= deadline) return Status(ErrorCategory::kTimeout, "receive timed out");
    pollfd pfd{fd, POLLIN, 0};
    ::poll(&pfd, 1, msLeft(deadline));
  }
  return Status::ok();
}

std::string hostName() {
  char h[256] = {0};
  gethostname(h, sizeof(h) - 1);
  return h;
}

std::string loopbackScope() {
  std::string boot;
  if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    char buf[64] = {0};
    if (std::fgets(buf, sizeof buf, f)) boot = buf;
    std::fclose(f);
  }
  while (!boot.empty() && (boot.back() == '\n' || boot.back() == ' ')) boot.pop_back();
  struct stat st {};
  const unsigned long long ns = ::stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
  return (boot.empty() ? hostName() : boot) + "/netns:" + std::to_string(ns);
}

uint64_t randomNonce() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace xsite
