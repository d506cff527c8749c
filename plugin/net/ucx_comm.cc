#include "plugin/net/ucx_comm.h"

#if XSITE_HAVE_UCX

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <map>

#include "transport/ucx/ucx.h"
#include "util/log.h"

namespace xsite::plugin::net {
namespace {

using transport::ucx::freeRequest;

using Clock = std::chrono::steady_clock;
constexpr auto kCloseWait = std::chrono::seconds(5);         // a closing send comm's flush
constexpr auto kAfterGoodbye = std::chrono::milliseconds(1000);  // messages the goodbye counted
constexpr uint64_t kCommMask = 0xffffffff00000000ull;
constexpr uint64_t kFullMask = ~uint64_t{0};
char gEmpty;  // the buffer of empty messages (UCX wants a pointer)

uint64_t tagOf(uint32_t commId, int tag) {
  return (uint64_t{commId} << 32) | static_cast<uint32_t>(tag);
}

}  // namespace

std::shared_ptr<UcxWorker> ucxWorkerFor(const Device& device) {
  static std::mutex mu;
  static auto* workers = new std::map<std::string, std::shared_ptr<UcxWorker>>;  // never freed:
  // proxy threads may outlive static teardown, as in net.cc
  std::lock_guard<std::mutex> lock(mu);
  auto& w = (*workers)[device.name];
  if (!w) {
    auto made = std::make_shared<UcxWorker>();
    made->netDevice = device.ucxNetDevice;
    made->worker = std::make_unique<transport::ucx::Worker>(0, 64, made->netDevice);
    XSITE_INFO(kNet, "net: UCX worker for device %s (%s, NET_DEVICES %s)", device.name.c_str(),
               transport::ucx::version().c_str(),
               made->netDevice.empty() ? "as configured" : made->netDevice.c_str());
    w = std::move(made);
  }
  return w;
}

// ---- send -----------------------------------------------------------------------------------

UcxSendComm::UcxSendComm(Fd fd, std::string label, std::shared_ptr<UcxWorker> w, uint32_t commId,
                         const void* address, size_t addressBytes)
    : SendComm(std::move(label)), fd_(std::move(fd)), w_(std::move(w)), commId_(commId) {
  std::lock_guard<std::mutex> lock(w_->mu);
  ep_ = w_->nextId++;
  w_->worker->connect(ep_, address, addressBytes);  // throws Error naming the UCX failure
}

UcxSendComm::~UcxSendComm() {
  {
    std::lock_guard<std::mutex> lock(w_->mu);
    // Sends still in flight (NCCL closes a comm with none; a failed job may not): the endpoint
    // is dropped, ending them. Otherwise a flush: every message handed to UCX reaches the
    // receiver's worker before the goodbye.
    bool inFlight = false;
    for (Request* r : queue_) {
      if (r->ucx[0] != nullptr && ucp_request_check_status(r->ucx[0]) == UCS_INPROGRESS)
        inFlight = true;
      freeRequest(w_->worker->handle(), r->ucx[0], false);
    }
    w_->worker->disconnect(ep_, std::chrono::duration_cast<std::chrono::milliseconds>(kCloseWait),
                           inFlight);
  }
  UcxGoodbye bye{UcxGoodbye::kMagic, sent_};
  (void)writeAll(fd_.get(), &bye, sizeof(bye), Clock::now() + std::chrono::seconds(5));
}

Status UcxSendComm::progress() {
  std::lock_guard<std::mutex> lock(w_->mu);
  transport::ucx::Worker& w = *w_->worker;
  w.progress();
  bool moved = false;
  for (auto it = queue_.begin(); it != queue_.end();) {
    Request* r = *it;
    if (!r->started) {
      r->started = true;
      ++sent_;
      ucp_request_param_t rp{};
      void* q = ucp_tag_send_nbx(w.ep(ep_), r->posted[0] ? r->data[0] : &gEmpty, r->posted[0],
                                 tagOf(commId_, r->tags[0]), &rp);
      if (UCS_PTR_IS_ERR(q))
        return peerError(std::string("UCX send failed: ") + ucs_status_string(UCS_PTR_STATUS(q)));
      r->ucx[0] = q;  // null: completed at once
    }
    if (r->ucx[0] != nullptr) {
      ucs_status_t s = ucp_request_check_status(r->ucx[0]);
      if (s == UCS_INPROGRESS) {
        ++it;
        continue;
      }
      freeRequest(w.handle(), r->ucx[0], false);
      if (s != UCS_OK)
        return peerError(std::string("connection lost (UCX: ") + ucs_status_string(s) +
                         ") while sending: did that rank exit or crash, or did the link break?");
    }
    r->done = true;
    r->pending = 0;
    moved = true;
    it = queue_.erase(it);
  }
  if (queue_.empty() || moved) return Status::ok();
  if (ucs_status_t f = w.failure(ep_); f != UCS_OK)
    return peerError(std::string("connection lost (UCX: ") + ucs_status_string(f) +
                     "): did that rank exit or crash, or did the link break?");
  char c;
  ssize_t n = ::recv(fd_.get(), &c, 1, MSG_DONTWAIT | MSG_PEEK);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    return peerError("the receiver closed the connection with sends in flight: did that rank "
                     "exit or crash?");
  return Status::ok();
}

// ---- receive --------------------------------------------------------------------------------

UcxRecvComm::UcxRecvComm(Fd fd, std::string label, std::shared_ptr<UcxWorker> w, uint32_t commId)
    : RecvComm(std::move(label)), fd_(std::move(fd)), w_(std::move(w)), commId_(commId) {}

UcxRecvComm::~UcxRecvComm() {
  std::lock_guard<std::mutex> lock(w_->mu);
  ucp_worker_h worker = w_->worker->handle();
  for (Request* r : queue_)
    for (int i = 0; i < r->n; ++i) freeRequest(worker, r->ucx[i], true);
  // Messages of this comm that nobody received: off the worker's unexpected queue.
  std::vector<char> sink;
  ucp_tag_recv_info_t info;
  while (ucp_tag_message_h msg = ucp_tag_probe_nb(worker, tagOf(commId_, 0), kCommMask, 1, &info)) {
    sink.resize(std::max<size_t>(info.length, 1));
    ucp_request_param_t rp{};
    void* q = ucp_tag_msg_recv_nbx(worker, sink.data(), info.length, msg, &rp);
    const auto deadline = Clock::now() + std::chrono::milliseconds(100);
    if (UCS_PTR_IS_PTR(q)) {
      while (ucp_request_check_status(q) == UCS_INPROGRESS && Clock::now() < deadline)
        ucp_worker_progress(worker);
      ucp_request_free(q);
    }
  }
}

Status UcxRecvComm::progress() {
  std::lock_guard<std::mutex> lock(w_->mu);
  transport::ucx::Worker& w = *w_->worker;
  w.progress();
  bool moved = false;
  for (auto it = queue_.begin(); it != queue_.end();) {
    Request* r = *it;
    if (!r->started) {
      r->started = true;
      for (int i = 0; i < r->n; ++i) {
        // Always a request (UCX 1.13 leaves recv_info unfilled on immediate completion without a
        // callback); ucp_tag_recv_request_test then reports the length.
        ucp_request_param_t rp{};
        rp.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
        void* q = ucp_tag_recv_nbx(w.handle(), r->posted[i] ? r->data[i] : &gEmpty, r->posted[i],
                                   tagOf(commId_, r->tags[i]), r->n == 1 ? kCommMask : kFullMask,
                                   &rp);
        if (UCS_PTR_IS_ERR(q))
          return peerError(std::string("UCX receive failed: ") +
                           ucs_status_string(UCS_PTR_STATUS(q)));
        r->ucx[i] = q;
      }
    }
    for (int i = 0; i < r->n; ++i) {
      if (r->filled[i] || r->ucx[i] == nullptr) continue;
      ucp_tag_recv_info_t info{};
      ucs_status_t s = ucp_tag_recv_request_test(r->ucx[i], &info);
      if (s == UCS_INPROGRESS) continue;
      freeRequest(w.handle(), r->ucx[i], false);
      if (s == UCS_ERR_MESSAGE_TRUNCATED)
        return transport::sizeError(label_,
                                    info.length > r->posted[i] ? transport::messageOf(info.length)
                                                               : "a larger message",
                                    r->posted[i], true);
      if (s != UCS_OK)
        return peerError(std::string("UCX receive failed: ") + ucs_status_string(s));
      r->got[i] = info.length;
      r->filled[i] = true;
      ++received_;
      --r->pending;
      moved = true;
    }
    if (r->pending > 0) {
      ++it;
      continue;
    }
    r->done = true;
    it = queue_.erase(it);
  }
  if (queue_.empty() || moved) return Status::ok();
  return checkPeer();
}

Status UcxRecvComm::checkPeer() {
  if (goodbyeGot_ < sizeof(goodbye_)) {
    ssize_t n = ::recv(fd_.get(), reinterpret_cast<char*>(&goodbye_) + goodbyeGot_,
                       sizeof(goodbye_) - goodbyeGot_, MSG_DONTWAIT);
    if (n > 0) {
      goodbyeGot_ += static_cast<size_t>(n);
      if (goodbyeGot_ == sizeof(goodbye_)) {
        if (goodbye_.magic != UcxGoodbye::kMagic)
          return peerError("sent a bad goodbye on its control socket (not an xsite peer?)");
        goodbyeAt_ = Clock::now();
      }
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return peerError("connection lost (its control socket closed without a goodbye): did that "
                       "rank exit or crash?");
    }
  }
  if (goodbyeGot_ < sizeof(goodbye_)) return Status::ok();
  if (received_ >= goodbye_.sent)
    return peerError("closed the connection after sending " + std::to_string(goodbye_.sent) +
                     " message(s): did that rank exit or crash?");
  if (Clock::now() - goodbyeAt_ > kAfterGoodbye)
    return peerError("closed the connection with messages still in flight: did that rank exit "
                     "or crash?");
  return Status::ok();
}

}  // namespace xsite::plugin::net

#endif  // XSITE_HAVE_UCX
