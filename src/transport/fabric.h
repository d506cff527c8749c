// Fabric: all connections of one rank, established together from a list of link requests.
// Establishment is collective: every rank calls establish() once, with requests that mirror
// each other's (if a asks for (b, ch), b asks for (a, ch) with the same backend).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "bootstrap/store.h"
#include "transport/ring_buffer.h"
#include "transport/wan/sizing.h"

namespace xsite::transport {

namespace wan {
class WanLink;
class TlsContext;
class WanProxy;
class ResumeAcceptor;
}

struct LinkRequest {
  int peer;
  int channel;
  Backend backend;
  std::string channelName;  // for messages: "ring", "domain-rs", ...
  bool bulk = true;         // bandwidth traffic; false: small, latency-bound messages
};

// Shared by the ranks of one process that run as threads: the memory of their loopback rings.
class LoopbackHub {
 public:
  explicit LoopbackHub(size_t ringBytes) : ringBytes_(ringBytes) {}
  std::shared_ptr<RingMemory> ring(int from, int to, int channel);

 private:
  size_t ringBytes_;
  std::mutex mu_;
  std::map<std::tuple<int, int, int>, std::shared_ptr<RingMemory>> rings_;
};

// How WAN-stream links are built (Backend::kWan).
struct WanLinkOptions {
  int streams = 4;
  size_t frameBytes = 64 << 10;
  size_t windowBytes = 0;      // 0: eight bandwidth-delay products, at least 4 MiB
  std::string congestion = "bbr";           // bulk links
  std::string latencyCongestion = "cubic";  // latency links (no pacing of small bursts)
  double latencyUs = 5500;     // one way, as configured; sizes windows and buffers
  double rateMbit = 1000;
  // A broken stream is re-established within this, else its link fails (0: fail at once).
  std::chrono::milliseconds reconnectTimeout{120000};
  bool tls = false;  // TLS 1.3 on every stream, keyed by FabricOptions::secret (wan/tls.h)
};

struct FabricOptions {
  std::string prefix = "fabric";       // store key prefix, unique per communicator
  std::string listenIp = "127.0.0.1";  // TCP: where this rank listens
  uint64_t job = 0;                    // shared by every rank of the job (names, handshakes)
  bootstrap::JobSecret secret;         // every connection between ranks proves it
  size_t shmRingBytes = 2u << 20;
  int socketBufBytes = 0;  // 0: kernel autotuning
  std::chrono::milliseconds tcpUserTimeout{30000};  // TCP and WAN sockets (setKeepAlive; 0: off)
  std::chrono::milliseconds timeout{120000};
  std::shared_ptr<LoopbackHub> hub;  // required for kLoopback links
  std::string ucxNetDevices;         // kUcx links: UCX's NET_DEVICES ("": UCX's own choice)
  WanLinkOptions wan;
};

class Fabric {
 public:
  Fabric(int rank, int size, bootstrap::Store& store, FabricOptions options);
  ~Fabric();
  void establish(const std::vector<LinkRequest>& links);
  Connection& connection(int peer, int channel) const;
  size_t count() const { return conns_.size(); }
  // The longest round trip of this rank's WAN links as the kernel measured them (each link's
  // shortest stream), microseconds; 0 without WAN links.
  double wanRttUs() const noexcept;
  // Any thread: the destructor closes at once instead of waiting for peers to acknowledge.
  void abandon() noexcept { abandoned_.store(true, std::memory_order_release); }

 private:
  void establishSockets(const std::vector<LinkRequest>& links);
  // Socket set-up of a WAN stream (buffers before connect, congestion control).
  void prepareWanSocket(int fd, bool bulk);
  struct SocketGroup {
    std::vector<const LinkRequest*> links;  // by channel
    std::string label;
  };
  // `peerWan`: the peer's WAN listener, where a broken stream is dialed again.
  void addSocketConnections(const SocketGroup& g, std::vector<Fd> fds, const SockAddr& peerWan);
  void establishShm(const std::vector<LinkRequest>& links);
  void establishUcx(const std::vector<LinkRequest>& links);
  std::string label(const LinkRequest& l) const;
  int rank_, size_;
  bootstrap::Store& store_;
  FabricOptions opt_;
  std::map<std::pair<int, int>, std::unique_ptr<Connection>> conns_;
  std::vector<wan::WanLink*> wanLinks_;       // every WAN link of conns_ (shared by channels)
  std::unique_ptr<wan::ResumeAcceptor> resumeAcceptor_;  // until the proxy takes it
  std::unique_ptr<wan::WanProxy> wanProxy_;  // keeps staged WAN bytes flowing, heals links
  wan::WanSizing wanSizing_{};  // derived in establishSockets()
  std::shared_ptr<const wan::TlsContext> wanTls_;  // WanLinkOptions::tls, for every WAN link
  bool warnedCongestion_ = false;
  std::atomic<bool> abandoned_{false};
};

}  // namespace xsite::transport
