#include "transport/transport.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "util/params.h"
#include "util/socket.h"
#include "xsite/error.h"

namespace xsite::transport {

Backend sameSiteBackend(const params::Params& p) {
  const std::string& site = p.string(params::Id::kSiteTransport);
  const bool haveUcx = backendBuilt(Backend::kUcx);
  if (site == "ucx" && !haveUcx)
    throw Error(ErrorCategory::kInvalidUsage,
                "XSITE_SITE_TRANSPORT=ucx but this xsite was built without UCX (install "
                "libucx-dev and rebuild, or use XSITE_SITE_TRANSPORT=tcp or auto)");
  return site == "tcp" || !haveUcx ? Backend::kTcp : Backend::kUcx;
}

Backend otherSiteBackend(const params::Params& p) {
  const Backend b = p.string(params::Id::kWanTransport) == "streams" ? Backend::kWan : Backend::kTcp;
  if (p.integer(params::Id::kWanTls) != 0 && b != Backend::kWan)
    throw Error(ErrorCategory::kInvalidUsage,
                "XSITE_WAN_TLS=1 secures WAN streams, and XSITE_WAN_TRANSPORT=tcp has none: use "
                "XSITE_WAN_TRANSPORT=streams");
  return b;
}

uint64_t Connection::postSend(const void* data, size_t bytes, uint32_t tag) noexcept {
  sends_.push_back(Op{static_cast<char*>(const_cast<void*>(data)), bytes, tag});
  return ++sendsPosted_;
}

uint64_t Connection::postRecv(void* data, size_t bytes, Arrival* arrival) noexcept {
  recvs_.push_back(Op{static_cast<char*>(data), bytes, 0, arrival});
  return ++recvsPosted_;
}

void Connection::completeSend() noexcept {
  sends_.pop_front();
  sendsDone_.fetch_add(1, std::memory_order_release);
}

void Connection::completeRecv(size_t bytes, uint32_t tag) noexcept {
  if (Arrival* a = recvs_.front().arrival) *a = Arrival{bytes, tag};
  recvs_.pop_front();
  ++recvsDone_;
}

Status Connection::takes(const Op& op, uint64_t sent) const {
  if (sent == op.bytes || (op.arrival != nullptr && sent < op.bytes)) return Status::ok();
  return sizeError(label_, messageOf(sent), op.bytes, op.arrival != nullptr);
}

std::string messageOf(uint64_t bytes) { return "a " + std::to_string(bytes) + "-byte message"; }

Status sizeError(const std::string& who, const std::string& sent, size_t posted, bool atMost) {
  return Status(ErrorCategory::kInvalidUsage,
                who + " sent " + sent + " where this rank posted " +
                    (atMost ? "a receive of at most " : "") + std::to_string(posted) +
                    " bytes: do all ranks call the collective with the same count, datatype, "
                    "root and algorithm?");
}

namespace {
Status lostConnection(const std::string& who, const std::string& why) {
  return Status(ErrorCategory::kRemote, who + ": " + why);
}

bool lostPeer(int err) {
  return err == EPIPE || err == ECONNRESET || err == ETIMEDOUT || err == EHOSTUNREACH ||
         err == ENETUNREACH;
}
}  // namespace

Status Connection::peerGone(const std::string& why) const { return lostConnection(label_, why); }


Result<size_t> socketRecv(const std::string& who, int fd, void* data, size_t bytes) noexcept {
  while (true) {
    ssize_t r = ::recv(fd, data, bytes, MSG_DONTWAIT);
    if (r > 0) return static_cast<size_t>(r);
    if (r == 0) return lostConnection(who, "closed the connection: did that rank exit or crash?");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    if (lostPeer(errno))
      return lostConnection(who, "connection lost (" + errnoString(errno) +
                                     "): did that rank exit or crash, or did the link break?");
    return Status(ErrorCategory::kSystem, who + ": recv: " + errnoString(errno));
  }
}

Result<size_t> socketSend(const std::string& who, int fd, const iovec* iov, int iovcnt) noexcept {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  while (true) {
    ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) return static_cast<size_t>(w);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    if (lostPeer(errno))
      return lostConnection(who, "connection lost while sending (" + errnoString(errno) +
                                     "): did that rank exit or crash, or did the link break?");
    return Status(ErrorCategory::kSystem, who + ": send: " + errnoString(errno));
  }
}

}  // namespace xsite::transport
