// One CollNet communicator: the CollNet ranks of an NCCL communicator as an xsite coll::Context
// (rank 0's handle names the rendezvous store its listen started; every handle carries its
// rank's site), and the posted operations, run in order as steppable collectives
// (coll::Operation) by NCCL's own test() calls: no thread of their own.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "bootstrap/store.h"
#include "coll/context.h"
#include "coll/pipeline.h"
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

// What a posted operation does: start() builds its collective (null: nothing to move), which
// the comm steps to the end; then finish() (if any) runs, e.g. to copy a result out.
struct Work {
  std::function<std::unique_ptr<coll::Operation>()> start;
  std::function<void()> finish;
};

// One posted operation; a slot of the comm's fixed pool.
struct Request {
  static constexpr uint64_t kMagic = 0x58534352ull;  // "XSCR"
  uint64_t magic = kMagic;
  Work work;
  std::unique_ptr<coll::Operation> op;  // started, not yet complete
  bool started = false;
  int bytes = 0;  // reported by test()
  int state = 0;  // kFree, kQueued, kDone, kFailed
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
  // NCCL closes after its operations completed; any still queued or running (a peer that never
  // came) are dropped and the context aborted, so the links close without waiting for peers.
  ~CollComm();
  CollComm(const CollComm&) = delete;
  CollComm& operator=(const CollComm&) = delete;

  coll::Context& context() { return *ctx_; }
  // Queues `work`; nullptr when kMaxRequests are in flight.
  Request* post(Work work, int bytes);
  // test(): moves the operations (in posting order) while they move, for at most kSlice, then
  // reports `r`: *done, or the status of a failed operation; a reported slot is free again.
  Status test(Request* r, int* done, int* size);

  uint64_t magic = kMagic;

 private:
  // A test() call gives the operations this long while they move (NCCL's proxy has other work).
  static constexpr std::chrono::microseconds kSlice{2000};
  void progress();  // mu_ held
  void fail(Request* r, ErrorCategory category, std::string message);  // mu_ held
  std::unique_ptr<bootstrap::TcpStoreServer> server_;  // rank 0: the store, alive with the comm
  std::unique_ptr<bootstrap::Store> store_;
  std::unique_ptr<coll::Context> ctx_;
  std::mutex mu_;
  std::deque<Request*> queue_;  // posted, not complete, in order
  std::unique_ptr<Request[]> slots_;
  // After a failure every later operation fails too, with the first failure's message: the
  // ranks no longer agree on where the byte streams stand.
  bool broken_ = false;
  ErrorCategory brokenCategory_ = ErrorCategory::kInternal;
  std::string brokenMessage_;
};

}  // namespace xsite::plugin::collnet
