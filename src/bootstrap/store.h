// The rendezvous store ranks use to find each other (like torchrun's TCPStore): a key/value map
// with blocking waits. Rank 0 serves it over TCP for processes; threads share an in-process one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/socket.h"

namespace xsite::bootstrap {

using Duration = std::chrono::milliseconds;

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // Waits until every key exists. True: `out` holds their values in order. False (the timeout
  // ran out): `out` holds the keys still missing.
  virtual bool waitFor(const std::vector<std::string>& keys, Duration timeout,
                       std::vector<std::string>& out) = 0;
  // waitFor that throws Error(kTimeout) naming the missing keys.
  std::vector<std::string> get(const std::vector<std::string>& keys, Duration timeout);
  std::string get(const std::string& key, Duration timeout) { return get(std::vector{key}, timeout)[0]; }
};

// Every rank publishes `mine` under prefix/<rank> and receives everyone's, in rank order. On
// timeout the error names the ranks that never arrived.
std::vector<std::string> allGather(Store& store, const std::string& prefix, int rank, int size,
                                   const std::string& mine, Duration timeout);

class InProcessStore final : public Store {
 public:
  void set(const std::string& key, const std::string& value) override;
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> kv_;
};

// The TCP server; one thread, poll() over all clients.
class TcpStoreServer {
 public:
  explicit TcpStoreServer(const SockAddr& bindAddr);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  SockAddr address() const { return address_; }

 private:
  void run();
  Fd listen_;
  Fd wakeRead_, wakeWrite_;
  SockAddr address_;
  std::thread thread_;
};

class TcpStore final : public Store {
 public:
  // Connects, retrying until `connectTimeout` (the server may start later than its clients).
  TcpStore(const SockAddr& server, Duration connectTimeout);
  void set(const std::string& key, const std::string& value) override;
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override;

 private:
  std::string roundTrip(const std::string& request, Duration timeout);
  SockAddr server_;
  Fd fd_;
  std::mutex mu_;
};

}  // namespace xsite::bootstrap
