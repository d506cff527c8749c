// One CollNet communicator: the CollNet ranks of an NCCL communicator as an xsite coll::Context
// (rank 0's handle names the rendezvous store its listen started; every handle carries its
// rank's site), and a worker thread that runs the posted operations in order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bootstrap/store.h"
#include "coll/context.h"
#include "util/socket.h"
#include "util/status.h"

namespace xsite::plugin::collnet {

// The listen handle NCCL exchanges (at most NCCL_NET_HANDLE_MAXSIZE bytes).
struct Handle {
  static constexpr uint32_t kMagic = 0x4e435358u;  // "XSCN"
  static constexpr uint32_t kVersion = 3;          // 3: the store's address may be IPv6
  uint32_t magic;
  uint32_t version;
  WireAddr store;  // rendezvous store of this listener, used from rank 0
  int32_t site;  // XSITE_SITE of the listening rank
  uint32_t reserved2;
  uint64_t nonce;   // rank 0's becomes the job id of the fabric
  uint64_t domain;  // FNV-1a hash of the rank's domain name (XSITE_DOMAIN, launcher node, host)
};
static_assert(sizeof(Handle) <= 128, "NCCL_NET_HANDLE_MAXSIZE");

// One posted operation; a slot of the comm's fixed pool.
struct Request {
  static constexpr uint64_t kMagic = 0x58534352ull;  // "XSCR"
  uint64_t magic = kMagic;
  std::function<void()> work;
  int bytes = 0;              // reported by test()
  std::atomic<int> state{0};  // kFree, kQueued, kDone, kFailed
  ErrorCategory category = ErrorCategory::kInternal;
  std::string message;
  class CollComm* comm = nullptr;
  static constexpr int kFree = 0, kQueued = 1, kDone = 2, kFailed = 3;
};

class CollComm {
 public:
  static constexpr uint64_t kMagic = 0x5853434full;  // "XSCO"
  CollComm(std::unique_ptr<bootstrap::TcpStoreServer> server,
           std::unique_ptr<bootstrap::Store> store, std::unique_ptr<coll::Context> ctx);
  // Stops the worker. NCCL closes after its operations completed; any still queued or running
  // (a peer that never came) are aborted, so the close returns in milliseconds rather than
  // after XSITE_TIMEOUT per operation, and the links close without waiting for peers.
  ~CollComm();
  CollComm(const CollComm&) = delete;
  CollComm& operator=(const CollComm&) = delete;

  coll::Context& context() { return *ctx_; }
  // Queues `work` (run on the worker thread); nullptr when kMaxRequests are in flight.
  Request* post(std::function<void()> work, int bytes);
  // Returns the slot to the pool once test() has reported it.
  void release(Request* r);

  uint64_t magic = kMagic;

 private:
  void run();
  std::unique_ptr<bootstrap::TcpStoreServer> server_;  // rank 0: the store, alive with the comm
  std::unique_ptr<bootstrap::Store> store_;
  std::unique_ptr<coll::Context> ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;
  std::unique_ptr<Request[]> slots_;
  bool stop_ = false;
  bool running_ = false;  // the worker runs an operation
  std::thread worker_;
};

}  // namespace xsite::plugin::collnet
