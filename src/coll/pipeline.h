// The pipeline engine: a schedule is a list of stages, each on its own channel. A stage has one
// or more lanes (instances on separate connections); chunk c runs on lane c % lanes. Stage j
// starts chunk c once stage j-1 has finished chunk c and lane c % lanes is free, so while chunk
// k crosses the WAN, chunk k+1 is reduced inside the site and chunk k-1 gathered, and a stage
// with several lanes (the WAN) keeps several chunks in flight. Stages never block: the engine
// polls them all.
#pragma once

#include <poll.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "coll/context.h"
#include "util/status.h"

namespace xsite::coll {

class Stage {
 public:
  virtual ~Stage() = default;
  virtual void start(int chunk) = 0;
  // Progresses connections and local work; sets `moved` when anything happened.
  virtual Status advance(bool& moved, bool& done) noexcept = 0;
  // For error messages: what the stage is and whom it waits on.
  virtual std::string describe() const = 0;
  // What an idle engine may sleep on until this stage can move (see
  // transport::Connection::appendPollFds); false if some connection has no descriptor.
  virtual bool appendPollFds(std::vector<pollfd>& out) const noexcept = 0;
};

// One collective in flight: its stages (each a list of lanes) over `chunks` chunks, and where
// the pipeline stands. A collective's start function (collectives.h) builds one; the caller
// either run()s it to the end or step()s it from its own progress loop (the NCCL CollNet's
// test()), so a collective never needs a thread of its own.
class Operation {
 public:
  // `what` names the collective in errors ("allReduce(hier)").
  Operation(Context& ctx, std::string what) : ctx_(ctx), what_(std::move(what)) {}
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;
  // Keeps `stage` alive as long as the operation; returns it.
  Stage* own(std::unique_ptr<Stage> stage);
  // The schedule; once, before the first step.
  void schedule(std::vector<std::vector<Stage*>> stages, int chunks);
  // Starts what may start and advances what runs, once over every stage, without blocking;
  // `moved` is set when anything happened. True once every chunk has passed every stage. Throws
  // xsite::Error on a transport error, when the context failed, or when nothing moved for the
  // context's timeout (XSITE_TIMEOUT) while it was stepped.
  bool step(bool& moved);
  // Steps to the end, waiting (Backoff) while nothing moves.
  void run();

 private:
  bool waitable(std::vector<pollfd>& fds) const;  // the running stages' descriptors, if all have
  Context& ctx_;
  std::string what_;
  std::vector<std::unique_ptr<Stage>> owned_;
  std::vector<std::vector<Stage*>> stages_;
  int chunks_ = 0;
  std::vector<std::vector<char>> done_;    // per stage and chunk
  std::vector<std::vector<int>> running_;  // per stage and lane: the chunk it works on, or -1
  std::vector<int> nextStart_, finished_;  // per stage
  std::chrono::steady_clock::time_point lastMove_;
  bool complete_ = false;
};

// Waits with a backoff that spins first, then yields, then sleeps: in poll() on the active
// stages' descriptors when they all have one (woken by the data itself), else for a growing
// time (shared memory has no descriptor).
class Backoff {
 public:
  void reset() { idle_ = 0; }
  void pause(const std::vector<pollfd>* fds);
  bool spinning() const { return idle_ < kSpins; }

 private:
  static constexpr unsigned kSpins = 64;
  unsigned idle_ = 0;
};

}  // namespace xsite::coll
