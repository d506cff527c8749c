#include "plugin/net/wan_comm.h"

#include <chrono>
#include <map>
#include <mutex>

#include "transport/wan/proxy.h"
#include "transport/wan/resume.h"
#include "transport/wan/wan.h"
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
  r.timeout = settings.fabric.wan.reconnectTimeout;
  r.secret = settings.fabric.secret;
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
  o.frameBytes = settings.fabric.wan.frameBytes;
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
    a = std::make_unique<ResumeAcceptor>(std::move(listener), settings.fabric.secret);
    if (h.proxy) h.proxy->attach(a.get());
    XSITE_DEBUG(kNet, "net: resume listener on %s", a->address().toString().c_str());
  }
  return htons(static_cast<uint16_t>(a->address().port()));
}

// ---- the ends ---------------------------------------------------------------------------

namespace {

class SenderLease final : public ConnectionLease {
 public:
  SenderLease(WanLink& link, std::string label) : link_(link), label_(std::move(label)) {
    attach(&link_);
  }
  ~SenderLease() override {
    // Deliver what is staged before the sockets close (NCCL saw those sends complete), with the
    // proxy still writing and healing, and wait for the receiver to acknowledge it: closing with
    // acknowledgements unread would reset the connection under the receiver's last bytes.
    if (!link_.drain(std::chrono::steady_clock::now() + kCloseDrain))
      XSITE_WARN(kNet, "%s: closed with bytes the receiver did not acknowledge within %lld s (is it alive?)",
                 label_.c_str(), static_cast<long long>(kCloseDrain.count()));
    detach(&link_);
  }

 private:
  WanLink& link_;
  std::string label_;
};

class ReceiverLease final : public ConnectionLease {
 public:
  ReceiverLease(WanLink& link, ResumeAcceptor* acceptor) : link_(link), acceptor_(acceptor) {
    attach(&link_);  // the proxy heals it and writes its acknowledgements
  }
  ~ReceiverLease() override {
    if (acceptor_ != nullptr) acceptor_->remove(&link_);
    detach(&link_);
  }

 private:
  WanLink& link_;
  ResumeAcceptor* acceptor_;
};

}  // namespace

WanComm connectWan(std::vector<Fd> streams, const std::string& label, const LinkSettings& settings,
                   const SockAddr& resume, uint64_t key) {
  auto conn = makeConnection(std::move(streams), label, settings, true);
  if (settings.fabric.wan.reconnectTimeout.count() > 0 && resume.port() != 0)
    conn->link().enableResume(resumeFor(settings, true, resume, key));
  auto lease = std::make_unique<SenderLease>(conn->link(), label);
  return WanComm{std::move(conn), std::move(lease)};
}

WanComm acceptWan(std::vector<Fd> streams, const std::string& label, const LinkSettings& settings,
                  const std::string& ip, uint64_t key) {
  auto conn = makeConnection(std::move(streams), label, settings, false);
  ResumeAcceptor* acceptor = nullptr;
  if (settings.fabric.wan.reconnectTimeout.count() > 0) {
    acceptor = acceptorFor(ip);
    if (acceptor != nullptr && acceptor->add(key, 0, 0, &conn->link())) {
      conn->link().enableResume(resumeFor(settings, false, SockAddr{}, key));
    } else {
      acceptor = nullptr;
      XSITE_INFO(kNet, "%s: will not heal (no resume listener for this handle)", label.c_str());
    }
  }
  auto lease = std::make_unique<ReceiverLease>(conn->link(), acceptor);
  return WanComm{std::move(conn), std::move(lease)};
}

}  // namespace xsite::plugin::net
