// The rendezvous store ranks use to find each other (like torchrun's TCPStore): a key/value map
// with blocking waits. Rank 0 serves it over TCP for processes; threads share an in-process one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/auth.h"
#include "xsite/store.h"
#include "util/params.h"
#include "util/socket.h"

namespace xsite::bootstrap {

using Duration = std::chrono::milliseconds;

// The interface is public (xsite/store.h): frameworks hand theirs to Communicator::fromStore.
using Store = xsite::Store;

// Every rank publishes `mine` under prefix/<rank> and receives everyone's, in rank order. On
// timeout the error names the ranks that never arrived.
std::vector<std::string> allGather(Store& store, const std::string& prefix, int rank, int size,
                                   const std::string& mine, Duration timeout);

class InProcessStore final : public Store {
 public:
  void set(const std::string& key, const std::string& value) override;
  std::string setIfAbsent(const std::string& key, const std::string& value) override;
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> kv_;
};

// What one client may cost the TCP store. Anyone who reaches its port is a client (as with
// torchrun's TCPStore), so a client past a cap is told which one (when it still reads), logged
// and disconnected, and the others carry on. The messages name each cap as commented here.
struct StoreLimits {
  size_t maxClients = 65536;            // "client cap": connections served at once
  size_t maxClientBytes = 64u << 20;    // "buffer cap": a client's unhandled request bytes, and
                                        // its unsent replies (a client that does not read them)
  size_t maxKeysPerRequest = 1u << 17;  // "key cap": keys one wait names (allGather: world size)
  size_t maxReplyBytes = 64u << 20;     // "reply cap": one reply; TcpStore checks it too
  size_t maxStoredBytes = size_t{1} << 30;  // "stored-bytes cap": every key and value held
};

// The caps as XSITE_STORE_MAX_* set them (the defaults above when unset).
StoreLimits storeLimitsFromParams(const params::Params& p);

// The TCP server; one thread, poll() over all clients, no blocking call on a client's socket.
class TcpStoreServer {
 public:
  // Every client proves `secret` before it is served (bootstrap/auth.h).
  explicit TcpStoreServer(const SockAddr& bindAddr, const StoreLimits& limits = {},
                          JobSecret secret = {});
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  SockAddr address() const { return address_; }

 private:
  void run() noexcept;
  StoreLimits limits_;
  JobSecret secret_;
  Fd listen_;
  Fd wakeRead_, wakeWrite_;
  SockAddr address_;
  std::thread thread_;
};

class TcpStore final : public Store {
 public:
  // Connects, retrying until `connectTimeout` (the server may start later than its clients).
  // A reply longer than `maxReply` (XSITE_STORE_MAX_REPLY) is refused before it is allocated.
  // It proves `secret` to the server, and the server proves it back.
  TcpStore(const SockAddr& server, Duration connectTimeout, const JobSecret& secret = {},
           size_t maxReply = StoreLimits{}.maxReplyBytes);
  void set(const std::string& key, const std::string& value) override;
  std::string setIfAbsent(const std::string& key, const std::string& value) override;
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override;
  // How long past a request's own timeout the server may take to answer (10 s unless set). A
  // request that runs past it fails, and so does every later one: its reply may still come.
  void setReplyGrace(Duration grace) { grace_ = grace; }

 private:
  std::string roundTrip(const std::string& request, Duration timeout);
  // One reply; throws naming the store on a failure or an error reply.
  std::string readReply(std::chrono::steady_clock::time_point deadline);
  SockAddr server_;
  size_t maxReply_;
  Duration grace_{10000};
  Fd fd_;
  std::string broken_;  // why the connection is unusable (empty: it is not)
  std::mutex mu_;
};

}  // namespace xsite::bootstrap
