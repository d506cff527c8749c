// The rendezvous store's server (src/bootstrap/store.{h,cc}): a real TcpStoreServer on loopback,
// fresh for every input, and a client that sends it the fuzzer's bytes. The first byte chooses:
//   bit 0  authenticate first (the job's challenge-response, done right), so the bytes reach the
//          request parser; clear: the bytes are the answer to the challenge too
//   bit 1  keep the connection open while the well-behaved client below is served (a client
//          that left a wait pending or a request half sent); clear: shut down its sending side
// Then a well-behaved TcpStore must still be served: set, get and setIfAbsent answer right. Any
// failure there, or a crash or leak in the server, is a finding.
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <cstdlib>
#include <string>
#include <vector>

#include "bootstrap/auth.h"
#include "bootstrap/store.h"
#include "fuzz_input.h"
#include "util/socket.h"
#include "xsite/error.h"

namespace {

using namespace xsite;
using namespace xsite::bootstrap;
using Clock = std::chrono::steady_clock;

const JobSecret& secret() {
  static const JobSecret s(std::string("fuzz-job-secret-0123456789"));
  return s;
}

// Caps small enough that the fuzzer reaches them, large enough for real requests.
StoreLimits limits() {
  StoreLimits l;
  l.maxClients = 8;
  l.maxClientBytes = 64 << 10;
  l.maxKeysPerRequest = 64;
  l.maxReplyBytes = 64 << 10;
  l.maxStoredBytes = 256 << 10;
  return l;
}

// Reads and drops what the server sent until it closes, or `idle` passes without a byte.
void drain(int fd, std::chrono::milliseconds idle) {
  char buf[65536];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(idle.count())) <= 0) return;
    const ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return;
  }
}

// Sends what the socket takes until the deadline; the server may refuse and close at any point.
void sendSome(int fd, const std::string& bytes, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < bytes.size() && Clock::now() < deadline) {
    const ssize_t w = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      sent += static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      drain(fd, std::chrono::milliseconds(1));  // it may wait for us to read its replies
    } else {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("XSITE_DEBUG", "NONE", 0);  // refusals are logged once per client: too much noise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xsite::fuzz::Input in(data, size);
  const uint8_t mode = in.u8();
  const std::string bytes = in.rest();
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits(), secret());
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  Fd bad = xsite::fuzz::withoutAlarm([&] { return tcpConnect(server.address(), deadline); });
  if (mode & 1) {
    if (!authenticateToListener(bad.get(), secret(), deadline, "fuzz store"))
      __builtin_trap();  // a right answer to the challenge must be accepted
  }
  sendSome(bad.get(), bytes, deadline);
  if (mode & 2) {
    drain(bad.get(), std::chrono::milliseconds(2));
  } else {
    ::shutdown(bad.get(), SHUT_WR);
    drain(bad.get(), std::chrono::milliseconds(1000));  // the server closes after EOF
  }
  // A well-behaved client must be served, whatever the other one did.
  auto good = xsite::fuzz::withoutAlarm([&] {
    return std::make_unique<TcpStore>(server.address(), std::chrono::seconds(5), secret(),
                                      limits().maxReplyBytes);
  });
  good->set("fuzz/good", "value");
  if (good->get("fuzz/good", std::chrono::seconds(5)) != "value") __builtin_trap();
  if (good->setIfAbsent("fuzz/once", "a") != "a") __builtin_trap();
  if (good->setIfAbsent("fuzz/once", "b") != "a") __builtin_trap();
  std::vector<std::string> out;
  if (good->waitFor({"fuzz/never"}, std::chrono::milliseconds(1), out) || out.size() != 1)
    __builtin_trap();
  return 0;
}
