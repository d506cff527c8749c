// Liveness of a running job, kept in the rendezvous store (rank 0 serves it for the job's life):
//
// - The failure record: the first rank whose collective fails publishes what it saw under one
//   key, and every later failure reports that one. A rank that dies is named by its neighbour
//   (whose link to it broke); the ranks that fail after the neighbour gave up report the
//   neighbour's finding, not "the neighbour closed its connection".
// - Heartbeats (XSITE_HEARTBEAT): every rank's thread writes a counter under "hb/<rank>" four
//   times a period and reads everyone's. A rank whose counter stands still for two periods (a
//   stopped, hung or cut-off process: its sockets may well stay open) is reported as the job's
//   failure, so every rank names it within three periods of its last beat. Rank 0 serves the
//   store, so a store that does not answer for two periods names rank 0.
//
// Cost: each rank reads every rank's key four times a period (N^2 / period key reads at rank 0);
// with the default period that is small up to thousands of ranks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/store.h"

namespace xsite::bootstrap {

struct Failure {
  int reporter = -1;    // the rank that saw it first
  std::string message;  // what it saw; names the culprit
};

// Publishes `message` as `rank`'s failure unless the job has one already; returns the job's first
// failure (this one when it was first). Throws Error when the store does not answer.
Failure reportFailure(Store& store, int rank, const std::string& message);
// The job's first failure, if any (does not wait).
std::optional<Failure> findFailure(Store& store);
// How a rank reports a failure another rank saw first.
std::string describeFailure(const Failure& f);

// The heartbeat key's value of a rank that ended orderly (its destructor ran): it beats no more
// and is not to be named for that.
inline constexpr const char* kHeartbeatDone = "done";
std::string heartbeatKey(int rank);

class Heartbeat {
 public:
  using OnFailure = std::function<void(const Error&)>;
  // Starts beating as `rank` of `size` on `store` (a connection of its own: the thread blocks
  // on it) and watching the others. `names[r]` is how errors name rank r ("rank r" when empty).
  // `onFailure` runs once, on the heartbeat thread, with the job's first failure: one another
  // rank reported, a rank that stood still (reported here), or the store not answering.
  Heartbeat(std::unique_ptr<Store> store, int rank, int size, Duration period,
            std::vector<std::string> names, OnFailure onFailure);
  // Says this rank is done (kHeartbeatDone) and stops; see finish().
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Says this rank is done and stops the thread (idempotent). On rank 0, waits first until every
  // other rank is done or has stood still for two periods (at most `othersCap`), because rank 0
  // serves the store where the others report failures. A store that goes away after rank 0 said
  // it is done ends the others' heartbeats quietly.
  void finish(Duration othersCap = Duration(0));

  // This rank's own failure, for the thread to report at once (it holds the store connection
  // with the short reply bound): onFailure then runs with the job's first failure, this one or an
  // earlier one, or with the store's silence. Any thread; the first report counts.
  void report(ErrorCategory category, const std::string& message);

  // Rank 0 said it is done: its store may go at any time, and that is no failure.
  bool rank0Done() const noexcept { return rank0Done_.load(std::memory_order_acquire); }

  // Writes `rank`'s first beat. Each rank calls it before the set-up's last barrier, so that
  // every heartbeat's first read finds every rank's key.
  static void announce(Store& store, int rank);

 private:
  struct Watch;
  void run() noexcept;
  void tick(Watch& w);
  std::string nameOf(int rank) const;

  std::unique_ptr<Store> store_;
  int rank_, size_;
  Duration period_;
  std::vector<std::string> names_;
  OnFailure onFailure_;
  bool failed_ = false;       // onFailure_ ran (thread only)
  bool storeBroken_ = false;  // a call to the store failed (thread only until joined)
  uint64_t beat_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> rank0Done_{false};
  std::optional<Error> report_;  // report()'s
  bool reported_ = false;         // the thread took report_
  bool stop_ = false;
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace xsite::bootstrap
