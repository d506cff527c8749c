#include "transport/ucx/ucx.h"

#include <ucp/api/ucp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "transport/fabric.h"
#include "transport/ucx/worker.h"
#include "util/log.h"

namespace xsite::transport::ucx {
namespace {

using Clock = std::chrono::steady_clock;

// ---- tags ---------------------------------------------------------------------------------------

enum class Kind : uint64_t { kData = 0, kBye = 1, kHello = 2 };
constexpr int kKindShift = 62, kRankShift = 40, kChannelShift = 32;
constexpr uint64_t kMessageTagMask = 0xffffffffull;  // the message's tag (Connection::postSend)
constexpr uint64_t kMatchMask = ~kMessageTagMask;    // kind, sender and channel match exactly
constexpr int kMaxRanks = 1 << 22;
constexpr int kMaxChannels = 1 << 8;

uint64_t makeTag(Kind kind, int rank, int channel, uint32_t messageTag) {
  return (static_cast<uint64_t>(kind) << kKindShift) | (static_cast<uint64_t>(rank) << kRankShift) |
         (static_cast<uint64_t>(channel) << kChannelShift) | messageTag;
}

// How long a closing rank waits for its goodbyes and endpoint flushes, and how long a receiver
// waits, after a peer's goodbye, for messages that the goodbye says were sent.
constexpr auto kCloseWait = std::chrono::seconds(2);
constexpr auto kAbandonWait = std::chrono::milliseconds(100);  // forced closes only
constexpr auto kAfterGoodbye = std::chrono::seconds(1);

char gEmpty;  // the buffer of empty messages (UCX wants a pointer)

std::mutex& initMutex() {  // ucp_init / ucp_cleanup of several fabrics of one process
  static std::mutex m;
  return m;
}

std::string hexOf(const void* data, size_t bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; ++i) {
    unsigned char c = static_cast<const unsigned char*>(data)[i];
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

std::vector<unsigned char> bytesOf(const std::string& hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::vector<unsigned char> v(hex.size() / 2);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return v;
}

// Waits (progressing) until every request has completed or the deadline passes, then frees them.
void settle(ucp_worker_h worker, std::vector<void*>& reqs, Clock::time_point deadline) {
  auto pending = [&] {
    for (void* r : reqs)
      if (ucp_request_check_status(r) == UCS_INPROGRESS) return true;
    return false;
  };
  while (pending() && Clock::now() < deadline) ucp_worker_progress(worker);
  for (void* r : reqs) ucp_request_free(r);
  reqs.clear();
}

}  // namespace

// ---- the worker: one UCP context + worker (worker.h) -------------------------------------------

Error ucxError(const std::string& what, ucs_status_t s) {
  return Error(ErrorCategory::kSystem, "UCX: " + what + ": " + ucs_status_string(s));
}

Worker::Worker(int rank, size_t peers, const std::string& netDevices) : rank_(rank) {
  std::lock_guard<std::mutex> lk(initMutex());
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);  // UCX_* as the user set them
  if (s != UCS_OK) throw ucxError("reading the UCX_* configuration", s);
  if (!netDevices.empty()) {
    s = ucp_config_modify(config, "NET_DEVICES", netDevices.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      throw ucxError("setting UCX's NET_DEVICES to " + netDevices, s);
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_ESTIMATED_NUM_EPS |
                      UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.estimated_num_eps = peers;
  params.mt_workers_shared = 0;
  s = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (s != UCS_OK) throw ucxError("ucp_init (check UCX_TLS and UCX_NET_DEVICES)", s);
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;  // one progress engine, driven by the caller's thread
  s = ucp_worker_create(context_, &wp, &worker_);
  if (s != UCS_OK) {
    ucp_cleanup(context_);
    throw ucxError("ucp_worker_create", s);
  }
  s = ucp_worker_get_address(worker_, &addr_, &addrLen_);
  if (s != UCS_OK) {
    ucp_worker_destroy(worker_);
    ucp_cleanup(context_);
    throw ucxError("ucp_worker_get_address", s);
  }
  if (ucp_worker_get_efd(worker_, &efd_) != UCS_OK) efd_ = -1;  // callers then poll by time
}

Worker::~Worker() {
  const auto deadline =
      Clock::now() + (abandoned_ ? std::chrono::milliseconds(kAbandonWait) : kCloseWait);
  settle(worker_, goodbyeReqs_, deadline);
  // Flush what is in flight on working endpoints; a failed one can only be forced closed.
  std::vector<void*> closing;
  for (auto& [rank, p] : peers_) {
    if (!p->ep) continue;
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = p->failed != UCS_OK || abandoned_ ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void* r = ucp_ep_close_nbx(p->ep, &rp);
    if (UCS_PTR_IS_PTR(r)) closing.push_back(r);
  }
  settle(worker_, closing, deadline);
  // Goodbyes (and anything else) that arrived after their connection closed: take them off the
  // unexpected queue so UCX does not warn about them.
  std::vector<char> sink;
  ucp_tag_recv_info_t info;
  while (ucp_tag_message_h msg = ucp_tag_probe_nb(worker_, 0, 0, 1, &info)) {
    sink.resize(std::max<size_t>(info.length, 1));
    ucp_request_param_t rp{};
    void* r = ucp_tag_msg_recv_nbx(worker_, sink.data(), info.length, msg, &rp);
    if (UCS_PTR_IS_PTR(r)) {
      std::vector<void*> one{r};
      settle(worker_, one, Clock::now() + std::chrono::milliseconds(100));
    }
  }
  std::lock_guard<std::mutex> lk(initMutex());
  ucp_worker_release_address(worker_, addr_);
  ucp_worker_destroy(worker_);
  ucp_cleanup(context_);
}

void Worker::onError(void* arg, ucp_ep_h, ucs_status_t status) noexcept {
  auto* p = static_cast<Peer*>(arg);
  if (p->failed == UCS_OK) p->failed = status;
  XSITE_DEBUG(kNet, "UCX endpoint to rank %d failed: %s", p->rank, ucs_status_string(status));
}

std::string Worker::address() const { return hexOf(addr_, addrLen_); }

void Worker::connect(int peer, const std::string& hexAddress) {
  std::vector<unsigned char> remote = bytesOf(hexAddress);
  connect(peer, remote.data(), remote.size());
}

void Worker::connect(int peer, const void* address, size_t /*length*/) {
  auto p = std::make_unique<Peer>();
  p->rank = peer;
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                  UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep.address = static_cast<const ucp_address_t*>(address);
  // A dead peer becomes an error on its endpoint (and its requests) instead of a hang.
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep.err_handler.cb = &Worker::onError;
  ep.err_handler.arg = p.get();
  ucs_status_t s = ucp_ep_create(worker_, &ep, &p->ep);
  if (s != UCS_OK)
    throw ucxError("cannot reach rank " + std::to_string(peer) +
                       " (no transport in common? check UCX_TLS and UCX_NET_DEVICES on both ranks)",
                   s);
  peers_[peer] = std::move(p);
}

void Worker::disconnect(int peer, std::chrono::milliseconds wait, bool force) noexcept {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  if (it->second->ep) {
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = force || it->second->failed != UCS_OK ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void* r = ucp_ep_close_nbx(it->second->ep, &rp);
    if (UCS_PTR_IS_PTR(r)) {
      std::vector<void*> one{r};
      settle(worker_, one, Clock::now() + wait);
    }
  }
  peers_.erase(it);
}

void Worker::sendGoodbye(int peer, uint64_t tag, uint64_t sent, uint64_t received) noexcept {
  auto it = peers_.find(peer);
  if (abandoned_ || it == peers_.end() || it->second->failed != UCS_OK) return;
  goodbyes_.push_back({sent, received});
  ucp_request_param_t rp{};
  void* r = ucp_tag_send_nbx(it->second->ep, goodbyes_.back().data(), sizeof(goodbyes_.back()), tag, &rp);
  if (UCS_PTR_IS_PTR(r)) goodbyeReqs_.push_back(r);
}

// "tcp/eth0 (am, rma_bw)..." from ucp_ep_print_info's lane lines.
std::string Worker::lanes(int peer) const {
  char* text = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&text, &size);
  if (!f) return "?";
  ucp_ep_print_info(ep(peer), f);
  fclose(f);
  std::set<std::string> seen;
  std::string out;
  const char* line = text;
  while (line && *line) {
    const char* end = strchr(line, '\n');
    std::string l(line, end ? static_cast<size_t>(end - line) : strlen(line));
    line = end ? end + 1 : nullptr;
    size_t lane = l.find("lane[");
    if (lane == std::string::npos) continue;
    // "#   lane[0]:  1:tcp/eth0.0 md[1] ... -> ... am am_bw#0 wireup"
    size_t colon = l.find(':', l.find(']', lane));
    size_t start = l.find(':', l.find_first_not_of(' ', colon + 1));
    if (colon == std::string::npos || start == std::string::npos) continue;
    std::string tl = l.substr(start + 1, l.find(' ', start) - start - 1);
    if (seen.insert(tl).second) out += (out.empty() ? "" : ", ") + tl;
  }
  free(text);
  return out.empty() ? "?" : out;
}

namespace {

// ---- the connection -------------------------------------------------------------------------------

class UcxConnection final : public Connection {
 public:
  UcxConnection(int peer, std::string label, std::shared_ptr<Worker> worker, int channel)
      : Connection(peer, std::move(label)), w_(std::move(worker)), channel_(channel) {
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    void* r = ucp_tag_recv_nbx(w_->handle(), goodbyeIn_.data(), sizeof(goodbyeIn_),
                               makeTag(Kind::kBye, peer, channel, 0), kMatchMask, &rp);
    track(goodbye_, r);
  }

  void abandon() noexcept override { w_->abandon(); }

  ~UcxConnection() override {
    // A send still in flight ends with the endpoint's flush; receives are cancelled.
    for (auto* q : {&recvs_, &sends_})
      for (Pending& p : *q) freeRequest(w_->handle(), p.req, q == &recvs_);
    freeRequest(w_->handle(), goodbye_.req, true);
    // Tell the peer how far this side got, so its waiting operations fail instead of hanging.
    w_->sendGoodbye(peer(), makeTag(Kind::kBye, w_->rank(), channel_, 16), sentPosted_,
                    recvsDone());
  }

  uint64_t postSend(const void* data, size_t bytes, uint32_t tag) noexcept override {
    uint64_t ticket = Connection::postSend(data, bytes, tag);
    ++sentPosted_;
    ucp_request_param_t rp{};
    void* r = ucp_tag_send_nbx(w_->ep(peer()), bytes ? data : &gEmpty, bytes,
                               makeTag(Kind::kData, w_->rank(), channel_, tag), &rp);
    sends_.emplace_back();
    track(sends_.back(), r);
    return ticket;
  }

  uint64_t postRecv(void* data, size_t bytes, Arrival* arrival) noexcept override {
    uint64_t ticket = Connection::postRecv(data, bytes, arrival);
    recvs_.emplace_back();
    Pending& p = recvs_.back();
    // Always a request (UCX 1.13 leaves recv_info unfilled on immediate completion without a
    // callback); ucp_tag_recv_request_test then reports the sender's tag and length.
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    void* r = ucp_tag_recv_nbx(w_->handle(), bytes ? data : &gEmpty, bytes,
                               makeTag(Kind::kData, peer(), channel_, 0), kMatchMask, &rp);
    track(p, r);
    return ticket;
  }

  Status progress(bool& moved) noexcept override {
    if (!error_) return error_;
    if (w_->progress() && !idle()) moved = true;
    if (!peerClosed_ && check(goodbye_, true) == UCS_OK) {
      peerClosed_ = true;
      peerSent_ = goodbyeIn_[0];
      peerReceived_ = goodbyeIn_[1];
      closedAt_ = Clock::now();
    }
    while (!sends_.empty()) {
      ucs_status_t s = check(sends_.front(), false);
      if (s == UCS_INPROGRESS) break;
      if (s != UCS_OK) return fail(lost(s, "sending message " + std::to_string(sendsDone() + 1)));
      sends_.pop_front();
      completeSend();
      moved = true;
    }
    while (!recvs_.empty()) {
      Pending& p = recvs_.front();
      ucs_status_t s = check(p, true);
      if (s == UCS_INPROGRESS) break;
      if (s == UCS_ERR_MESSAGE_TRUNCATED) return fail(tooLarge(p.info.length));
      if (s != UCS_OK) return fail(lost(s, "receiving message " + std::to_string(recvsDone() + 1)));
      if (Status fits = takes(*frontRecv(), p.info.length); !fits) return fail(std::move(fits));
      const auto tag = static_cast<uint32_t>(p.info.sender_tag & kMessageTagMask);
      recvs_.pop_front();
      completeRecv(p.info.length, tag);
      moved = true;
    }
    return idle() ? Status::ok() : checkPeer();
  }

  bool probe(Arrival& next) noexcept override {
    if (!recvs_.empty()) return false;
    ucp_tag_recv_info_t info{};
    probing_ = ucp_tag_probe_nb(w_->handle(), makeTag(Kind::kData, peer(), channel_, 0),
                                kMatchMask, 0, &info) == nullptr;
    if (probing_) return false;
    next = Arrival{info.length, static_cast<uint32_t>(info.sender_tag & kMessageTagMask)};
    return true;
  }

  // The worker's event fd wakes a receiver. A sender may be waiting on the transport's send path
  // (socket space, the peer's rendezvous reads), which UCX does not promise to signal through
  // that fd, so a connection with sends in flight makes the caller poll by time (short sleeps).
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override {
    if (idle() && !probing_) return true;
    if (!sends_.empty()) return false;
    int fd = -1;
    if (!w_->arm(fd)) return false;  // events are waiting: progress again rather than sleep
    out.push_back({fd, POLLIN, 0});
    return true;
  }

 private:
  struct Pending {
    void* req = nullptr;              // null: completed at once with `status`
    ucs_status_t status = UCS_OK;
    ucp_tag_recv_info_t info{};       // receives: the sender's tag and length
  };

  static void track(Pending& p, void* r) noexcept {
    if (UCS_PTR_IS_ERR(r)) {
      p.status = UCS_PTR_STATUS(r);
    } else if (r != nullptr) {
      p.req = r;
      p.status = UCS_INPROGRESS;
    }
  }

  ucs_status_t check(Pending& p, bool recv) noexcept {
    if (!p.req) return p.status;
    ucs_status_t s = recv ? ucp_tag_recv_request_test(p.req, &p.info) : ucp_request_check_status(p.req);
    if (s != UCS_INPROGRESS) {
      ucp_request_free(p.req);
      p.req = nullptr;
      p.status = s;
    }
    return s;
  }

  Status fail(Status s) noexcept {
    error_ = std::move(s);
    return error_;
  }

  // UCX truncated the head receive: it reports the sender's size where it knows it.
  Status tooLarge(size_t length) {
    const Op& op = *frontRecv();
    return sizeError(label(), length > op.bytes ? messageOf(length) : "a larger message", op.bytes,
                     op.arrival != nullptr);
  }

  // An operation failed: the peer closed, died, or UCX itself failed.
  Status lost(ucs_status_t s, const std::string& what) const {
    if (peerClosed_) return peerGone("closed the connection while this rank was " + what);
    if (w_->failure(peer()) != UCS_OK || s == UCS_ERR_CONNECTION_RESET ||
        s == UCS_ERR_ENDPOINT_TIMEOUT || s == UCS_ERR_UNREACHABLE || s == UCS_ERR_CANCELED)
      return peerGone(std::string("connection lost (UCX: ") +
                      ucs_status_string(w_->failure(peer()) != UCS_OK ? w_->failure(peer()) : s) +
                      ") while " + what + ": did that rank exit or crash, or did the link break?");
    return Status(ErrorCategory::kSystem, label() + ": UCX failed " + what + ": " + ucs_status_string(s));
  }

  // Operations are waiting: are they waiting for a peer that is gone?
  Status checkPeer() noexcept {
    if (peerClosed_) {
      if (!recvs_.empty() && recvsDone() >= peerSent_)
        return fail(peerGone("closed the connection after sending " + std::to_string(peerSent_) +
                             " message(s): did that rank exit or crash?"));
      if (!sends_.empty() && sendsDone() >= peerReceived_)
        return fail(peerGone("closed the connection after receiving " +
                             std::to_string(peerReceived_) + " message(s): did that rank exit or crash?"));
      if (Clock::now() - closedAt_ > kAfterGoodbye)
        return fail(peerGone("closed the connection with messages still in flight: did that rank "
                             "exit or crash?"));
    }
    if (ucs_status_t f = w_->failure(peer()); f != UCS_OK)
      return fail(peerGone(std::string("connection lost (UCX: ") + ucs_status_string(f) +
                           "): did that rank exit or crash, or did the link break?"));
    return Status::ok();
  }

  std::shared_ptr<Worker> w_;
  int channel_;
  std::deque<Pending> sends_, recvs_;  // in posting order, beside the base class's queues
  uint64_t sentPosted_ = 0;
  Pending goodbye_;
  std::array<uint64_t, 2> goodbyeIn_{};  // the peer's {messages sent, messages received}
  bool peerClosed_ = false;
  uint64_t peerSent_ = 0, peerReceived_ = 0;
  Clock::time_point closedAt_{};
  Status error_;
  bool probing_ = false;  // probe() found nothing yet: appendPollFds() waits on the worker
};

}  // namespace

std::string version() { return std::string("UCX ") + ucp_get_version_string(); }

std::vector<std::unique_ptr<Connection>> establish(int rank, bootstrap::Store& store,
                                                   const std::string& prefix,
                                                   const std::vector<LinkSpec>& links,
                                                   std::chrono::milliseconds timeout,
                                                   const std::string& netDevices) {
  std::vector<std::unique_ptr<Connection>> conns;
  if (links.empty()) return conns;
  std::set<int> peers;
  for (const auto& l : links) {
    if (l.channel < 0 || l.channel >= kMaxChannels || l.peer >= kMaxRanks || rank >= kMaxRanks)
      throw Error(ErrorCategory::kInternal, "UCX link " + l.label + ": channel or rank out of range");
    peers.insert(l.peer);
  }
  auto worker = std::make_shared<Worker>(rank, peers.size(), netDevices);
  const auto key = [&](int r) { return prefix + "/ucx-addr/" + std::to_string(r); };
  store.set(key(rank), worker->address());
  std::vector<std::string> keys;
  for (int p : peers) keys.push_back(key(p));
  std::vector<std::string> addrs = store.get(keys, timeout);
  size_t i = 0;
  for (int p : peers) worker->connect(p, addrs[i++]);

  // One hello each way per peer: when it has arrived both endpoints are wired up.
  const auto deadline = Clock::now() + timeout;
  std::map<int, std::array<void*, 2>> hellos;
  for (int p : peers) {
    ucp_request_param_t rp{};
    void* s = ucp_tag_send_nbx(worker->ep(p), &gEmpty, 0, makeTag(Kind::kHello, rank, 0, 0), &rp);
    void* r = ucp_tag_recv_nbx(worker->handle(), &gEmpty, 0, makeTag(Kind::kHello, p, 0, 0),
                               kMatchMask, &rp);
    if (UCS_PTR_IS_ERR(s) || UCS_PTR_IS_ERR(r))
      throw ucxError("hello to rank " + std::to_string(p),
                     UCS_PTR_IS_ERR(s) ? UCS_PTR_STATUS(s) : UCS_PTR_STATUS(r));
    hellos[p] = {s, r};
  }
  while (true) {
    std::string missing;
    for (auto& [p, reqs] : hellos)
      for (void*& r : reqs) {
        if (r == nullptr) continue;
        ucs_status_t s = ucp_request_check_status(r);
        if (s == UCS_INPROGRESS) {
          missing += (missing.empty() ? "rank " : ", rank ") + std::to_string(p);
          break;
        }
        ucp_request_free(r);
        r = nullptr;
        if (s != UCS_OK) throw ucxError("hello with rank " + std::to_string(p), s);
      }
    if (missing.empty()) break;
    if (Clock::now() > deadline) {
      for (auto& [p, reqs] : hellos)
        for (void*& r : reqs) freeRequest(worker->handle(), r, true);
      throw Error(ErrorCategory::kTimeout,
                  "UCX: these peers never answered over UCX: " + missing +
                      " (are UCX_TLS and UCX_NET_DEVICES the same on every rank, and can they reach "
                      "each other?)");
    }
    worker->progress();
  }
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true))
    XSITE_INFO(kNet, "UCX site transport (%s): lanes to rank %d: %s", version().c_str(),
               *peers.begin(), worker->lanes(*peers.begin()).c_str());
  for (const auto& l : links)
    conns.push_back(std::make_unique<UcxConnection>(l.peer, l.label, worker, l.channel));
  return conns;
}

namespace {

// fabric.h's Establisher: establish() above, pairwise through the store.
class UcxEstablisher final : public Establisher {
 public:
  void establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& links,
                 ConnectionMap& out) override {
    if (links.empty()) return;
    std::vector<LinkSpec> specs;
    for (const LinkRequest* l : links) specs.push_back({l->peer, l->channel, env.label(*l)});
    const FabricOptions& o = env.options;
    auto made = ucx::establish(env.rank, env.store, o.prefix, specs, o.timeout, o.ucxNetDevices);
    for (size_t i = 0; i < links.size(); ++i) out[{links[i]->peer, links[i]->channel}] = std::move(made[i]);
  }
};

}  // namespace

std::unique_ptr<Establisher> makeEstablisher() { return std::make_unique<UcxEstablisher>(); }

}  // namespace xsite::transport::ucx
