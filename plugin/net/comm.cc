#include "plugin/net/comm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <random>

#include "util/log.h"

namespace xsite::plugin::net {
namespace {

bool wouldBlock(int err) {
  return err == EAGAIN || err == EWOULDBLOCK;
}

std::string siteText(int site) {
  return "site " + std::to_string(site);
}

// Connection options shared by both ends.
void prepareSocket(int fd, const LinkSettings& settings, int peerSite) {
  setNoDelay(fd);
  if (settings.socketBufBytes > 0) setBufferSizes(fd, settings.socketBufBytes);
  if (peerSite != settings.site && !settings.wanCongestion.empty() &&
      !setCongestionControl(fd, settings.wanCongestion))
    XSITE_DEBUG(kNet, "net: TCP_CONGESTION=%s refused (%s); kernel default kept",
                settings.wanCongestion.c_str(), errnoString(errno).c_str());
}

uint64_t randomNonce() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

// Reads into buf[got..want); returns bytes read (0: would block).
Result<size_t> readSome(int fd, void* buf, size_t want, const std::string& label) {
  while (true) {
    ssize_t r = ::recv(fd, buf, want, MSG_DONTWAIT);
    if (r > 0) return static_cast<size_t>(r);
    if (r == 0) return Status(ErrorCategory::kRemote, label + ": the peer closed the connection");
    if (errno == EINTR) continue;
    if (wouldBlock(errno)) return size_t{0};
    return Status(ErrorCategory::kRemote, label + ": recv: " + errnoString(errno));
  }
}

// A sender's connection in progress (lives in ConnectHandle::pending).
struct Connecting {
  Fd fd;
  bool connected = false;
  Hello hello{};
  size_t helloSent = 0;
  int peerSite = 0;
  std::string label;
};

}  // namespace

// ---- Comm ---------------------------------------------------------------------------------

Comm::Comm(Fd fd, std::string label, int requests)
    : fd_(std::move(fd)), label_(std::move(label)), pool_(static_cast<size_t>(requests)) {}

Request* Comm::allocRequest() {
  for (auto& r : pool_)
    if (!r.used) {
      r = Request{};
      r.comm = this;
      r.used = true;
      return &r;
    }
  return nullptr;
}

Status Comm::peerError(const std::string& what) const {
  return Status(ErrorCategory::kRemote, label_ + ": " + what);
}

Status Comm::ioError(const char* op, int err) const {
  return Status(ErrorCategory::kRemote, label_ + ": " + op + ": " + errnoString(err) +
                                            " (did the peer exit, or the link break?)");
}

Status Comm::test(Request* request, int* done, int* sizes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (request < pool_.data() || request >= pool_.data() + pool_.size() || !request->used)
    return Status(ErrorCategory::kInternal, label_ + ": test() of a request that is not in flight");
  if (error_) error_ = progress();
  if (!error_) return error_;
  *done = request->done ? 1 : 0;
  if (request->done) {
    if (sizes != nullptr)
      for (int i = 0; i < request->n; ++i) sizes[i] = static_cast<int>(request->got[i]);
    request->used = false;
  }
  return Status::ok();
}

// ---- send ---------------------------------------------------------------------------------

Status SendComm::post(void* data, size_t size, int tag, void** request) {
  std::lock_guard<std::mutex> lock(mu_);
  *request = nullptr;
  if (!error_) return error_;
  if (size > kMaxP2pBytes)
    return Status(ErrorCategory::kInternal, label_ + ": isend of " + std::to_string(size) +
                                                " bytes exceeds maxP2pBytes " +
                                                std::to_string(kMaxP2pBytes));
  Request* r = allocRequest();
  if (r == nullptr) return Status::ok();  // all in flight: NCCL calls again
  r->n = 1;
  r->pending = 1;
  r->data[0] = static_cast<char*>(data);
  r->posted[0] = size;
  r->got[0] = size;
  r->tags[0] = tag;
  r->header = MsgHeader{MsgHeader::kMagic, tag, size};
  queue_.push_back(r);
  *request = r;
  error_ = progress();  // start moving at once; an error surfaces in test()
  return Status::ok();
}

Status SendComm::progress() {
  while (!queue_.empty()) {
    Request* r = queue_.front();
    const size_t total = sizeof(MsgHeader) + r->posted[0];
    iovec iov[2];
    int cnt = 0;
    if (r->sent < sizeof(MsgHeader))
      iov[cnt++] = {reinterpret_cast<char*>(&r->header) + r->sent, sizeof(MsgHeader) - r->sent};
    const size_t payloadDone = r->sent > sizeof(MsgHeader) ? r->sent - sizeof(MsgHeader) : 0;
    if (r->posted[0] > payloadDone)
      iov[cnt++] = {r->data[0] + payloadDone, r->posted[0] - payloadDone};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(cnt);
    ssize_t w = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (wouldBlock(errno)) return Status::ok();
      return ioError("send", errno);
    }
    r->sent += static_cast<size_t>(w);
    if (r->sent < total) continue;
    r->done = true;
    r->pending = 0;
    queue_.pop_front();
  }
  return Status::ok();
}

// ---- receive ------------------------------------------------------------------------------

Status RecvComm::post(int n, void** data, const size_t* sizes, const int* tags, void** request) {
  std::lock_guard<std::mutex> lock(mu_);
  *request = nullptr;
  if (!error_) return error_;
  if (n < 1 || n > kMaxRecvs)
    return Status(ErrorCategory::kInternal, label_ + ": irecv of " + std::to_string(n) +
                                                " buffers; maxRecvs is " +
                                                std::to_string(kMaxRecvs));
  Request* r = allocRequest();
  if (r == nullptr) return Status::ok();  // all in flight: NCCL calls again
  r->n = n;
  r->pending = n;
  for (int i = 0; i < n; ++i) {
    r->data[i] = static_cast<char*>(data[i]);
    r->posted[i] = sizes[i];
    r->tags[i] = tags != nullptr ? tags[i] : 0;
  }
  queue_.push_back(r);
  *request = r;
  error_ = progress();
  return Status::ok();
}

Status RecvComm::progress() {
  while (!queue_.empty()) {
    Request* r = queue_.front();
    if (target_ < 0) {
      auto got = readSome(fd_.get(), reinterpret_cast<char*>(&header_) + headerGot_,
                          sizeof(MsgHeader) - headerGot_, label_);
      if (!got) return got.status();
      if (got.value() == 0) return Status::ok();
      headerGot_ += got.value();
      if (headerGot_ < sizeof(MsgHeader)) continue;
      if (header_.magic != MsgHeader::kMagic)
        return peerError(
            "sent a message header with a bad magic (not an xsite net plugin peer, "
            "or the stream is out of step)");
      // One buffer: the message is the next one, whatever its tag. Grouped: the unfilled buffer
      // whose tag matches.
      for (int i = 0; i < r->n && target_ < 0; ++i)
        if (!r->filled[i] && (r->n == 1 || r->tags[i] == header_.tag)) target_ = i;
      if (target_ < 0)
        return peerError("sent a message with tag " + std::to_string(header_.tag) +
                         " that no buffer of the posted grouped receive expects");
      if (header_.bytes > r->posted[target_])
        return peerError("sent a message of " + std::to_string(header_.bytes) +
                         " bytes, larger than the posted receive of " +
                         std::to_string(r->posted[target_]) + " bytes (tag " +
                         std::to_string(header_.tag) + ")");
      payloadGot_ = 0;
    }
    if (payloadGot_ < header_.bytes) {
      auto got =
          readSome(fd_.get(), r->data[target_] + payloadGot_, header_.bytes - payloadGot_, label_);
      if (!got) return got.status();
      if (got.value() == 0) return Status::ok();
      payloadGot_ += got.value();
      if (payloadGot_ < header_.bytes) continue;
    }
    r->got[target_] = header_.bytes;
    r->filled[target_] = true;
    target_ = -1;
    headerGot_ = 0;
    if (--r->pending == 0) {
      r->done = true;
      queue_.pop_front();
    }
  }
  return Status::ok();
}

// ---- listen / accept ----------------------------------------------------------------------

ListenComm::ListenComm(Fd fd, uint64_t nonce, LinkSettings settings)
    : fd_(std::move(fd)), nonce_(nonce), settings_(std::move(settings)) {}

Status listen(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
              ListenComm** listenComm) {
  *listenComm = nullptr;
  Fd fd = tcpListen(sockAddrOf(device.ip, 0), 1024);  // throws Error(kSystem) naming the address
  setNonBlocking(fd.get(), true);
  SockAddr bound = localAddr(fd.get());
  const uint64_t nonce = randomNonce();
  std::memset(handle, 0, sizeof(ConnectHandle));
  handle->magic = ConnectHandle::kMagic;
  handle->version = ConnectHandle::kVersion;
  handle->port = bound.addr.sin_port;
  handle->ip = bound.addr.sin_addr.s_addr;
  handle->site = settings.site;
  handle->nonce = nonce;
  handle->pending = nullptr;
  XSITE_DEBUG(kNet, "net: listening on %s (%s)", bound.toString().c_str(), device.name.c_str());
  *listenComm = new ListenComm(std::move(fd), nonce, settings);
  return Status::ok();
}

Status ListenComm::acceptStep(RecvComm** recvComm) {
  *recvComm = nullptr;
  while (true) {
    if (!pending_.valid()) {
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (wouldBlock(errno)) return Status::ok();
        return Status(ErrorCategory::kSystem, "net accept: " + errnoString(errno));
      }
      pending_ = Fd(fd);
      SockAddr a;
      a.addr = peer;
      pendingPeer_ = a.toString();
      helloGot_ = 0;
    }
    const std::string label = "net recv from " + pendingPeer_;
    auto got = readSome(pending_.get(), reinterpret_cast<char*>(&hello_) + helloGot_,
                        sizeof(Hello) - helloGot_, label);
    if (!got) {
      XSITE_INFO(kNet, "%s: dropped before its hello (%s)", label.c_str(),
                 got.status().message().c_str());
      pending_.reset();
      continue;
    }
    if (got.value() == 0) return Status::ok();
    helloGot_ += got.value();
    if (helloGot_ < sizeof(Hello)) continue;
    if (hello_.magic != Hello::kMagic || hello_.nonce != nonce_) {
      XSITE_INFO(kNet, "%s: not the expected sender (bad hello); dropped", label.c_str());
      pending_.reset();
      continue;
    }
    prepareSocket(pending_.get(), settings_, hello_.site);
    *recvComm = new RecvComm(std::move(pending_), label + " (" + siteText(hello_.site) + ")",
                             kRecvRequests);
    XSITE_DEBUG(kNet, "%s: accepted", (*recvComm)->label().c_str());
    return Status::ok();
  }
}

// ---- connect ------------------------------------------------------------------------------

Status connectStep(const LinkSettings& settings, ConnectHandle* handle, SendComm** sendComm) {
  *sendComm = nullptr;
  if (handle->magic != ConnectHandle::kMagic || handle->version != ConnectHandle::kVersion)
    return Status(ErrorCategory::kInternal,
                  "net connect: the handle is not an xsite net plugin handle (magic/version)");
  auto* c = static_cast<Connecting*>(handle->pending);
  if (c == nullptr) {
    SockAddr to;
    to.addr.sin_family = AF_INET;
    to.addr.sin_port = handle->port;
    to.addr.sin_addr.s_addr = handle->ip;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status(ErrorCategory::kSystem, "net connect: socket: " + errnoString(errno));
    auto owned = std::make_unique<Connecting>();
    owned->fd = Fd(fd);
    owned->peerSite = handle->site;
    owned->label = "net send to " + to.toString() + " (" + siteText(handle->site) + ")";
    prepareSocket(fd, settings, handle->site);  // buffer sizes before connect()
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), sizeof(to.addr)) != 0 &&
        errno != EINPROGRESS && errno != EINTR)
      return Status(ErrorCategory::kRemote, owned->label + ": connect: " + errnoString(errno));
    owned->hello = Hello{Hello::kMagic, settings.site, handle->nonce};
    c = owned.release();
    handle->pending = c;
  }
  auto fail = [&](Status s) {
    delete c;
    handle->pending = nullptr;
    return s;
  };
  if (!c->connected) {
    pollfd p{c->fd.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, 0);
    if (n < 0 && errno != EINTR)
      return fail(Status(ErrorCategory::kSystem, "net connect: poll: " + errnoString(errno)));
    if (n <= 0) return Status::ok();
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return fail(
          Status(ErrorCategory::kRemote, c->label + ": connect: " + errnoString(err) +
                                             " (is the receiving rank alive and reachable?)"));
    c->connected = true;
  }
  while (c->helloSent < sizeof(Hello)) {
    ssize_t w = ::send(c->fd.get(), reinterpret_cast<char*>(&c->hello) + c->helloSent,
                       sizeof(Hello) - c->helloSent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (wouldBlock(errno)) return Status::ok();
      return fail(Status(ErrorCategory::kRemote, c->label + ": hello: " + errnoString(errno)));
    }
    c->helloSent += static_cast<size_t>(w);
  }
  *sendComm = new SendComm(std::move(c->fd), c->label, kSendRequests);
  XSITE_DEBUG(kNet, "%s: connected", c->label.c_str());
  delete c;
  handle->pending = nullptr;
  return Status::ok();
}

}  // namespace xsite::plugin::net
