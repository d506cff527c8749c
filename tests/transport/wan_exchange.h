// Helpers of the WAN link tests: a two-way exchange of patterned messages that checks every
// byte, and a wait for a link to fail.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "transport/wan/wan.h"

namespace xsite::transport::wan {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline uint8_t pattern(int from, int message, size_t i) {
  return static_cast<uint8_t>(from * 131 + message * 31 + i * 7 + (i >> 12));
}

// Sends `messages` messages of `bytes` and receives as many, checking every byte; returns the
// first error (or a mismatch) as a status.
inline Status exchange(WanConnection& c, int self, int messages, size_t bytes, milliseconds limit) {
  std::vector<std::vector<uint8_t>> out(messages, std::vector<uint8_t>(bytes));
  std::vector<std::vector<uint8_t>> in(messages, std::vector<uint8_t>(bytes));
  uint64_t lastSend = 0, lastRecv = 0;
  for (int m = 0; m < messages; ++m) {
    for (size_t i = 0; i < bytes; ++i) out[m][i] = pattern(self, m, i);
    lastSend = c.postSend(out[m].data(), bytes);
    lastRecv = c.postRecv(in[m].data(), bytes);
  }
  const auto deadline = Clock::now() + limit;
  while (c.sendsDone() < lastSend || c.recvsDone() < lastRecv) {
    bool moved = false;
    XSITE_RETURN_IF_ERROR(c.progress(moved));
    if (Clock::now() > deadline) return Status(ErrorCategory::kTimeout, "test: exchange stalled");
    if (!moved) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (int m = 0; m < messages; ++m)
    for (size_t i = 0; i < bytes; ++i)
      if (in[m][i] != pattern(1 - self, m, i))
        return Status(ErrorCategory::kInternal, "test: message " + std::to_string(m) +
                                                    " differs at byte " + std::to_string(i));
  // Both sides stay until what they sent is acknowledged.
  if (!c.link().drain(Clock::now() + std::chrono::seconds(10)))
    return Status(ErrorCategory::kTimeout, "test: drain");
  return Status::ok();
}

// Progresses `c` until its receive `ticket` fails (or 10 s pass); the failure.
inline Status waitFailed(WanConnection& c, uint64_t ticket) {
  const auto t0 = Clock::now();
  Status s;
  while (s.isOk() && c.recvsDone() < ticket && Clock::now() - t0 < std::chrono::seconds(10)) {
    bool moved = false;
    s = c.progress(moved);
    std::this_thread::sleep_for(milliseconds(1));
  }
  return s;
}

}  // namespace xsite::transport::wan
