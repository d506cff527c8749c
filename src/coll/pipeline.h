// The pipeline engine: a schedule is a list of stages, each on its own channel. A stage has one
// or more lanes (instances on separate connections); chunk c runs on lane c % lanes. Stage j
// starts chunk c once stage j-1 has finished chunk c and lane c % lanes is free, so while chunk
// k crosses the WAN, chunk k+1 is reduced inside the site and chunk k-1 gathered, and a stage
// with several lanes (the WAN) keeps several chunks in flight. Stages never block: the engine
// polls them all.
#pragma once

#include <poll.h>

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

// Runs the stages (each a list of lanes) over `chunks` chunks; throws xsite::Error on a transport
// error or when nothing moves for the context's timeout. `what` names the collective.
void runPipeline(Context& ctx, const std::vector<std::vector<Stage*>>& stages, int chunks,
                 const std::string& what);

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
