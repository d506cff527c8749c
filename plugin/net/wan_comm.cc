#include "plugin/net/wan_comm.h"

#include <poll.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "transport/wan/proxy.h"
#include "util/log.h"

namespace xsite::plugin::net {
namespace {

using transport::wan::ResumeAcceptor;
using transport::wan::WanConnection;
using transport::wan::WanLink;
using transport::wan::WanProxy;
using transport::wan::WanResume;

// How long closing a send comm waits for its staged bytes to reach the sockets.
constexpr std::chrono::seconds kCloseDrain{60};
// Smaller payloads go as they are: their encoding would save less than it costs.
constexpr size_t kMinCompressBytes = 64 << 10;

// The process-wide proxy thread, started with the first WAN comm and stopped with the last, and
// the resume listeners it polls (one per address, for the process's life).
struct ProxyHolder {
  std::mutex mu;
  std::unique_ptr<WanProxy> proxy;
  int users = 0;
  std::map<std::string, std::unique_ptr<ResumeAcceptor>> acceptors;  // by IP
};
ProxyHolder& holder() {
  static ProxyHolder* h = new ProxyHolder;  // never destroyed: comms may close at any time
  return *h;
}

void attach(WanLink* l) {
  ProxyHolder& h = holder();
  std::lock_guard<std::mutex> lock(h.mu);
  if (h.users++ == 0) {
    h.proxy = std::make_unique<WanProxy>(std::vector<WanLink*>{});
    for (auto& [ip, a] : h.acceptors) h.proxy->attach(a.get());
  }
  h.proxy->attach(l);
}

ResumeAcceptor* acceptorFor(const std::string& ip) {
  ProxyHolder& h = holder();
  std::lock_guard<std::mutex> lock(h.mu);
  auto it = h.acceptors.find(ip);
  return it == h.acceptors.end() ? nullptr : it->second.get();
}

// Both ends re-open a broken stream the same way (the sender dials, the receiver answers and
// probes): the link is named by the handle's nonce.
WanResume resumeFor(const LinkSettings& settings, bool dialer, const SockAddr& peer, uint64_t key) {
  WanResume r;
  r.dialer = dialer;
  r.peer = peer;
  r.hello.rank = 0;
  r.hello.channel = 0;
  r.hello.job = key;
  r.prepare = [settings](int fd) { prepareStream(fd, settings); };
  r.timeout = settings.reconnectTimeout;
  r.secret = settings.secret;
  return r;
}

void detach(WanLink* l) {
  ProxyHolder& h = holder();
  std::unique_ptr<WanProxy> last;
  {
    std::lock_guard<std::mutex> lock(h.mu);
    h.proxy->detach(l);
    if (--h.users == 0) last = std::move(h.proxy);
  }
  last.reset();  // joins the thread outside the lock
}

// `sender`: the side that dialed the streams (and dials again to heal them), the TLS client.
std::unique_ptr<WanConnection> makeConnection(std::vector<Fd> streams, const std::string& label,
                                              const LinkSettings& settings, bool sender) {
  transport::wan::WanOptions o;
  o.frameBytes = settings.wanFrameBytes;
  o.size(settings.wanSizing);
  o.tls = settings.wanTls;
  o.tlsClient = sender;
  return std::make_unique<WanConnection>(0, label, std::move(streams), o);
}

}  // namespace

uint16_t resumePort(const std::string& ip, const LinkSettings& settings) {
  ProxyHolder& h = holder();
  std::lock_guard<std::mutex> lock(h.mu);
  auto& a = h.acceptors[ip];
  if (!a) {
    // Re-dialed streams inherit the listener's buffer sizes, as at set-up.
    Fd listener = tcpListen(sockAddrOf(ip, 0), 1024, [&](int fd) {
      setBufferSizes(fd, settings.wanSizing.socketBytes);
    });  // throws Error(kSystem) naming the address
    a = std::make_unique<ResumeAcceptor>(std::move(listener), settings.secret);
    if (h.proxy) h.proxy->attach(a.get());
    XSITE_DEBUG(kNet, "net: resume listener on %s", a->address().toString().c_str());
  }
  return htons(static_cast<uint16_t>(a->address().port()));
}

// ---- send ---------------------------------------------------------------------------------

WanSendComm::WanSendComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings,
                         const SockAddr& resume, uint64_t key)
    : SendComm(std::move(label)), conn_(makeConnection(std::move(streams), label_, settings, true)) {
  if (settings.wanCodec != compress::CodecId::kNone) codec_ = compress::makeCodec(settings.wanCodec);
  if (settings.reconnectTimeout.count() > 0 && resume.port() != 0)
    conn_->link().enableResume(resumeFor(settings, true, resume, key));
  attach(&conn_->link());
}

WanSendComm::~WanSendComm() {
  drain();  // with the proxy still writing and healing the link
  detach(&conn_->link());
}

void WanSendComm::drain() {
  // Deliver what is staged before the sockets close (NCCL saw those sends complete), and wait
  // for the receiver to acknowledge it: closing with acknowledgements unread would reset the
  // connection under the receiver's last bytes.
  if (!conn_->link().drain(std::chrono::steady_clock::now() + kCloseDrain))
    XSITE_WARN(kNet, "%s: closed with bytes the receiver did not acknowledge within %lld s (is it alive?)",
               label_.c_str(), static_cast<long long>(kCloseDrain.count()));
}

Status WanSendComm::progress() {
  for (; handed_ < queue_.size(); ++handed_) {
    Request* r = queue_[handed_];
    const size_t bytes = r->posted[0];
    headers_.push_back(WanHeader{r->header, 0});
    encoded_.emplace_back();
    const void* payload = r->data[0];
    if (codec_ && bytes >= kMinCompressBytes) {
      std::vector<char>& e = encoded_.back();
      e.resize(codec_->maxEncodedBytes(bytes, DataType::kUint8));
      Result<size_t> n = codec_->encode(r->data[0], bytes, DataType::kUint8, e.data(), e.size());
      if (!n) {  // nothing of this request was handed over: keep the bookkeeping in step
        headers_.pop_back();
        encoded_.pop_back();
        return n.status();
      }
      e.resize(n.value());
      headers_.back().wireBytes = n.value();
      payload = e.data();
    }
    r->ticket = conn_->postSend(&headers_.back(), sizeof(WanHeader));
    const size_t wire = headers_.back().wireBytes != 0 ? headers_.back().wireBytes : bytes;
    if (bytes > 0) r->ticket = conn_->postSend(payload, wire);
  }
  bool moved = false;
  XSITE_RETURN_IF_ERROR(conn_->progress(moved));
  const uint64_t staged = conn_->sendsDone();
  while (!queue_.empty() && handed_ > 0 && queue_.front()->ticket <= staged) {
    Request* r = queue_.front();
    r->done = true;
    r->pending = 0;
    queue_.pop_front();
    headers_.pop_front();
    encoded_.pop_front();
    --handed_;
  }
  return Status::ok();
}

// ---- receive ------------------------------------------------------------------------------

WanRecvComm::WanRecvComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings,
                         const std::string& ip, uint64_t key)
    : RecvComm(std::move(label)), conn_(makeConnection(std::move(streams), label_, settings, false)) {
  if (settings.reconnectTimeout.count() > 0) {
    acceptor_ = acceptorFor(ip);
    if (acceptor_ != nullptr && acceptor_->add(key, 0, 0, &conn_->link())) {
      conn_->link().enableResume(resumeFor(settings, false, SockAddr{}, key));
    } else {
      acceptor_ = nullptr;
      XSITE_INFO(kNet, "%s: will not heal (no resume listener for this handle)", label_.c_str());
    }
  }
  attach(&conn_->link());  // the proxy heals it and writes its acknowledgements
}

WanRecvComm::~WanRecvComm() {
  if (acceptor_ != nullptr) acceptor_->remove(&conn_->link());
  detach(&conn_->link());
}

Status WanRecvComm::progress() {
  while (!queue_.empty()) {
    if (stage_ == Stage::kIdle) {
      ticket_ = conn_->postRecv(&header_, sizeof(WanHeader));
      stage_ = Stage::kHeader;
    }
    bool moved = false;
    XSITE_RETURN_IF_ERROR(conn_->progress(moved));
    if (conn_->recvsDone() < ticket_) return Status::ok();
    const MsgHeader& h = header_.msg;
    if (stage_ == Stage::kHeader) {
      XSITE_RETURN_IF_ERROR(matchHeader(*queue_.front(), h, &target_));
      if (h.bytes > 0) {
        if (header_.wireBytes == 0) {
          ticket_ = conn_->postRecv(queue_.front()->data[target_], h.bytes);
        } else {
          // Compressed: never more than the codecs' raw form (header + the bytes).
          if (header_.wireBytes < sizeof(compress::EncodedHeader) ||
              header_.wireBytes > h.bytes + sizeof(compress::EncodedHeader))
            return Status(ErrorCategory::kRemote,
                          label_ + " announced " + std::to_string(header_.wireBytes) +
                              " bytes on the wire for a " + std::to_string(h.bytes) +
                              "-byte message (garbled stream)");
          wire_.resize(header_.wireBytes);
          ticket_ = conn_->postRecv(wire_.data(), wire_.size());
        }
        stage_ = Stage::kPayload;
        continue;
      }
    }
    if (h.bytes > 0 && header_.wireBytes != 0)
      XSITE_RETURN_IF_ERROR(decodePayload(queue_.front()->data[target_]));
    fill(target_, h);
    stage_ = Stage::kIdle;
    target_ = -1;
  }
  return Status::ok();
}

Status WanRecvComm::decodePayload(void* dst) {
  compress::EncodedHeader eh;
  memcpy(&eh, wire_.data(), sizeof eh);  // wire_ holds at least a header (checked above)
  std::unique_ptr<compress::Codec>* codec = nullptr;
  if (eh.codec == static_cast<uint8_t>(compress::CodecId::kLz4)) codec = &lz4_;
  if (eh.codec == static_cast<uint8_t>(compress::CodecId::kZstd)) codec = &zstd_;
  if (codec == nullptr)
    return Status(ErrorCategory::kRemote, label_ + " sent a payload of codec " +
                                              std::to_string(eh.codec) +
                                              ", not a lossless one (garbled stream)");
  if (!*codec) *codec = compress::makeCodec(static_cast<compress::CodecId>(eh.codec));
  Status s = (*codec)->decode(wire_.data(), wire_.size(), header_.msg.bytes, DataType::kUint8, dst);
  if (!s) return Status(s.category(), label_ + ": " + s.message());
  return Status::ok();
}

}  // namespace xsite::plugin::net
