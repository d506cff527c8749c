// Meeting the other ranks of a process job: where the store is (XSITE_STORE_ADDR, else
// MASTER_ADDR:MASTER_PORT+1), rank 0 serving it, everyone's client, the job id, and the address
// this rank listens on. A single-rank job needs no address and gets an in-process store.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bootstrap/store.h"
#include "util/params.h"

namespace xsite::bootstrap {

class Rendezvous {
 public:
  // Collective: every rank of the job calls it. Throws Error naming what is missing or wrong;
  // a rank that reached another job's store (its rank taken, another world size, a "job" key
  // that is not one) fails at once saying that the store belongs to another job.
  Rendezvous(const params::Params& p, int rank, int worldSize, Duration timeout);
  // The same over a store the caller owns (a framework's; it must outlive this): nothing to
  // serve, no connection of its own (connect() gives nullptr, so no heartbeats).
  Rendezvous(Store& external, const params::Params& p, int rank, int worldSize, Duration timeout);
  ~Rendezvous();

  Store& store() { return *store_; }
  uint64_t job() const { return job_; }                 // the same on every rank
  const std::string& listenIp() const { return listenIp_; }
  // XSITE_JOB_SECRET: every connection between ranks proves it (bootstrap/auth.h).
  const JobSecret& secret() const { return secret_; }
  // Collective: the job is set up (rank 0 keeps serving the store for the job's life: failure
  // reports and heartbeats, bootstrap/heartbeat.h; its destructor waits for every rank to leave).
  void leave();
  // Another connection to the store, for a thread of its own (nullptr for an in-process store);
  // a reply later than `grace` past a request's timeout fails it.
  std::unique_ptr<Store> connect(Duration grace) const;
  // How each rank's process claimed its rank: "pid <pid> on <host>", in rank order.
  std::vector<std::string> processes();
  // Not collective: this rank failed to start and leaves now (best effort), so that rank 0 stops
  // serving the store once every rank has left or failed instead of waiting out its bound.
  void abandon() noexcept;

 private:
  void meet(const std::string& where);  // claims the rank, learns the job

  int rank_, worldSize_;
  Duration timeout_;
  JobSecret secret_;
  std::unique_ptr<TcpStoreServer> server_;
  std::unique_ptr<TcpStore> client_;
  std::unique_ptr<InProcessStore> solo_;
  Store* store_ = nullptr;
  uint64_t job_ = 0;
  std::string listenIp_;
  bool left_ = false;  // leave() or abandon() ran
  bool external_ = false;  // the caller's store
  SockAddr storeAddr_{};
  size_t maxReply_ = 0;
};

}  // namespace xsite::bootstrap
