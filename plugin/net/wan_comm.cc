#include "plugin/net/wan_comm.h"

#include <poll.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "transport/wan/proxy.h"
#include "util/log.h"

namespace xsite::plugin::net {
namespace {

using transport::wan::WanConnection;
using transport::wan::WanProxy;

// How long closing a send comm waits for its staged bytes to reach the sockets.
constexpr std::chrono::seconds kCloseDrain{60};

// The process-wide proxy thread, started with the first WAN send comm and stopped with the last.
struct ProxyHolder {
  std::mutex mu;
  std::unique_ptr<WanProxy> proxy;
  int users = 0;
};
ProxyHolder& holder() {
  static ProxyHolder* h = new ProxyHolder;  // never destroyed: comms may close at any time
  return *h;
}

void attach(WanConnection* c) {
  ProxyHolder& h = holder();
  std::lock_guard<std::mutex> lock(h.mu);
  if (h.users++ == 0) h.proxy = std::make_unique<WanProxy>(std::vector<WanConnection*>{});
  h.proxy->attach(c);
}

void detach(WanConnection* c) {
  ProxyHolder& h = holder();
  std::unique_ptr<WanProxy> last;
  {
    std::lock_guard<std::mutex> lock(h.mu);
    h.proxy->detach(c);
    if (--h.users == 0) last = std::move(h.proxy);
  }
  last.reset();  // joins the thread outside the lock
}

std::unique_ptr<WanConnection> makeConnection(std::vector<Fd> streams, const std::string& label,
                                              const LinkSettings& settings) {
  transport::wan::WanOptions o;
  o.frameBytes = settings.wanFrameBytes;
  o.windowBytes = settings.wanSizing.windowBytes;
  return std::make_unique<WanConnection>(0, label, std::move(streams), o);
}

}  // namespace

// ---- send ---------------------------------------------------------------------------------

WanSendComm::WanSendComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings)
    : SendComm(std::move(label)), conn_(makeConnection(std::move(streams), label_, settings)) {
  attach(conn_.get());
}

WanSendComm::~WanSendComm() {
  detach(conn_.get());
  drain();
}

void WanSendComm::drain() {
  // Deliver what is staged before the sockets close: NCCL saw those sends complete.
  const auto deadline = std::chrono::steady_clock::now() + kCloseDrain;
  std::vector<int> fds;
  std::vector<pollfd> pfds;
  while (std::chrono::steady_clock::now() < deadline) {
    bool moved = false, pending = false;
    conn_->flush(moved, pending);
    if (!pending) return;  // delivered, or the connection failed (nothing more can go)
    if (moved) continue;
    fds.clear();
    conn_->pendingFds(fds);
    pfds.clear();
    for (int fd : fds) pfds.push_back({fd, POLLOUT, 0});
    ::poll(pfds.data(), pfds.size(), 10);
  }
  XSITE_WARN(kNet, "%s: closed with staged bytes undelivered after %lld s (is the receiver alive?)",
             label_.c_str(), static_cast<long long>(kCloseDrain.count()));
}

Status WanSendComm::progress() {
  for (; handed_ < queue_.size(); ++handed_) {
    Request* r = queue_[handed_];
    r->ticket = conn_->postSend(&r->header, sizeof(MsgHeader));
    if (r->posted[0] > 0) r->ticket = conn_->postSend(r->data[0], r->posted[0]);
  }
  bool moved = false;
  XSITE_RETURN_IF_ERROR(conn_->progress(moved));
  const uint64_t staged = conn_->sendsDone();
  while (!queue_.empty() && queue_.front()->ticket <= staged) {
    Request* r = queue_.front();
    r->done = true;
    r->pending = 0;
    queue_.pop_front();
    --handed_;
  }
  return Status::ok();
}

// ---- receive ------------------------------------------------------------------------------

WanRecvComm::WanRecvComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings)
    : RecvComm(std::move(label)), conn_(makeConnection(std::move(streams), label_, settings)) {}

Status WanRecvComm::progress() {
  while (!queue_.empty()) {
    if (stage_ == Stage::kIdle) {
      ticket_ = conn_->postRecv(&header_, sizeof(MsgHeader));
      stage_ = Stage::kHeader;
    }
    bool moved = false;
    XSITE_RETURN_IF_ERROR(conn_->progress(moved));
    if (conn_->recvsDone() < ticket_) return Status::ok();
    if (stage_ == Stage::kHeader) {
      XSITE_RETURN_IF_ERROR(matchHeader(*queue_.front(), header_, &target_));
      if (header_.bytes > 0) {
        ticket_ = conn_->postRecv(queue_.front()->data[target_], header_.bytes);
        stage_ = Stage::kPayload;
        continue;
      }
    }
    fill(target_, header_);
    stage_ = Stage::kIdle;
    target_ = -1;
  }
  return Status::ok();
}

}  // namespace xsite::plugin::net
