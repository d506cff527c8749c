#include "transport/transport.h"

namespace xsite::transport {

const char* backendName(Backend b) noexcept {
  switch (b) {
    case Backend::kLoopback: return "loopback";
    case Backend::kShm: return "shm";
    case Backend::kTcp: return "tcp";
    case Backend::kWan: return "wan";
  }
  return "?";
}

uint64_t Connection::postSend(const void* data, size_t bytes) noexcept {
  sends_.push_back(Op{static_cast<char*>(const_cast<void*>(data)), bytes});
  return ++sendsPosted_;
}

uint64_t Connection::postRecv(void* data, size_t bytes) noexcept {
  recvs_.push_back(Op{static_cast<char*>(data), bytes});
  return ++recvsPosted_;
}

void Connection::completeSend() noexcept {
  sends_.pop_front();
  sendsDone_.fetch_add(1, std::memory_order_release);
}

void Connection::completeRecv() noexcept {
  recvs_.pop_front();
  ++recvsDone_;
}

Status Connection::sizeMismatch(uint64_t sent, size_t posted) const {
  return Status(ErrorCategory::kInvalidUsage,
                label_ + " sent a " + std::to_string(sent) + "-byte message where this rank posted " +
                    std::to_string(posted) +
                    " bytes: do all ranks call the collective with the same count, datatype, "
                    "root and algorithm?");
}

Status Connection::peerGone(const std::string& why) const {
  return Status(ErrorCategory::kRemote, label_ + ": " + why);
}

}  // namespace xsite::transport
