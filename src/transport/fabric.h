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
#include "util/params.h"

namespace xsite::transport {

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

// The settings' part of FabricOptions (XSITE_SHM_RING_SIZE, XSITE_SOCKET_BUF_SIZE,
// XSITE_TCP_USER_TIMEOUT and the XSITE_WAN_* of the streams), read once for the library and the
// NCCL net plugin alike; where ranks listen, the job and its secret come from the bring-up.
FabricOptions fabricOptionsFromParams(const params::Params& p);

using ConnectionMap = std::map<std::pair<int, int>, std::unique_ptr<Connection>>;  // (peer, channel)

// What a backend's establishment gets from its fabric.
struct EstablishEnv {
  int rank;
  int size;
  bootstrap::Store& store;
  const FabricOptions& options;
  // "rank 5 (ring, tcp)": how errors name a connection.
  std::string label(const LinkRequest& l) const;
};

// How one backend makes its connections (Gloo's Device::createPair, UCX's components); WAN
// streams and TCP share one, the socket rendezvous. Registered once in backends.cc. Every rank's
// fabric calls every registered establisher in the registry's order, so establish() may be
// collective over all ranks (one without such links still takes part in its barriers). It lives
// until just before the connections it made close: what they share (a WAN proxy thread, a
// resume listener) is its own.
class Establisher {
 public:
  virtual ~Establisher() = default;
  // Makes one connection per link in `links` (all of this establisher's backends) into `out`.
  // Throws Error (kTimeout naming the silent peers, kRemote, kSystem).
  virtual void establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& links,
                         ConnectionMap& out) = 0;
  // Before the connections close (not abandoned): deliver what they have staged, by `deadline`.
  virtual void drain(std::chrono::steady_clock::time_point /*deadline*/) noexcept {}
  // The longest round trip of its WAN links as the kernel measured them, microseconds; 0: none.
  virtual double wanRttUs() const noexcept { return 0; }
};

// The registry (backends.cc): per backend, its name, whether this build has it, and its
// establisher's factory (backends that share one name the same factory).
struct BackendInfo {
  Backend backend;
  const char* name;
  bool built;
  std::unique_ptr<Establisher> (*makeEstablisher)();
};
const std::vector<BackendInfo>& backends();

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
  int rank_, size_;
  bootstrap::Store& store_;
  FabricOptions opt_;
  ConnectionMap conns_;
  // Destroyed before the connections (declared after them): a WAN proxy thread stops before the
  // links it drives close.
  std::vector<std::unique_ptr<Establisher>> establishers_;
  std::atomic<bool> abandoned_{false};
};

}  // namespace xsite::transport
