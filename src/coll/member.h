// One rank's membership of a communicator of the public API (xsite::Communicator): its Context
// and, between processes, what holds the job together around it: the rendezvous (whose store
// rank 0 serves until every rank has left), the heartbeat, the names errors give the ranks. It
// owns the bring-up (where the ranks sit, which address each listens on, then bring_up.h) and the
// one failure path every collective goes through. The API above only checks arguments and picks
// the collective.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bootstrap/heartbeat.h"
#include "bootstrap/rendezvous.h"
#include "bootstrap/store.h"
#include "coll/context.h"
#include "coll/settings.h"
#include "transport/fabric.h"
#include "xsite/communicator.h"

namespace xsite::coll {

// The ranks of an xsite::LocalGroup: threads of one process, their store and in-process rings.
// `shape`: ranks per domain, per site (topo::Topology::fromShape).
struct LocalWorld {
  LocalWorld(const std::vector<std::vector<int>>& shape, Config config);
  topo::Topology topology;
  Config config;
  bootstrap::InProcessStore store;
  std::shared_ptr<transport::LoopbackHub> hub;
  uint64_t job;  // keeps its shared-memory names apart from another group's
};

class Member {
 public:
  // Rank `rank` of a LocalGroup: in-process rings, unless XSITE_DOMAIN_TRANSPORT,
  // XSITE_SITE_TRANSPORT or XSITE_WAN_TRANSPORT names a transport for its kind of link, which
  // then runs as between processes (the threads listening on 127.0.0.1).
  static std::unique_ptr<Member> join(LocalWorld& world, int rank);
  // A process of a job: the store the environment names (XSITE_STORE_ADDR, ...), or `external`
  // (a framework's, with the caller's rank and size) when not null.
  static std::unique_ptr<Member> join(Store* external, int rank, int size, const Config& config);
  ~Member();
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  Context& context() { return *ctx_; }
  const Context& context() const { return *ctx_; }
  const BackendChoice& backends() const { return backends_; }

  // Runs one collective. A failure other than bad arguments fails the communicator (every later
  // call throws it too) and is reported as the job's failure, or replaced by the job's first one
  // that another rank reported: a rank that dies is named by every survivor, not only by the
  // neighbour whose link to it broke (bootstrap/heartbeat.h).
  template <typename F>
  void run(F&& collective) {
    try {
      collective();
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::kInvalidUsage) throw;
      if (!ctx_->failed()) fail(e);
      throw ctx_->failure();
    }
  }

 private:
  Member() = default;
  void fail(const Error& e) noexcept;
  // A failure the heartbeat found (its thread): the job's first, already reported.
  void failFromHeartbeat(const Error& e) noexcept;
  std::string nameOf(int rank) const;

  std::unique_ptr<bootstrap::Rendezvous> rendezvous_;  // processes: rank 0 serves the store
  bootstrap::Store* store_ = nullptr;  // processes: where failures are reported (the job's store)
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<bootstrap::Heartbeat> heartbeat_;  // processes, unless XSITE_HEARTBEAT=0
  std::vector<std::string> names_;                   // how errors name each rank
  BackendChoice backends_{transport::Backend::kLoopback, transport::Backend::kLoopback,
                          transport::Backend::kLoopback};
};

}  // namespace xsite::coll
