#include "coll/pipeline.h"

#include <sched.h>
#include <time.h>

#include <chrono>

namespace xsite::coll {

void Backoff::pause() {
  ++idle_;
  if (idle_ < 32) {
    __builtin_ia32_pause();
  } else if (idle_ < 256) {
    sched_yield();
  } else {
    timespec ts{0, 20000};  // 20 us: leave the cores to ranks that have work
    nanosleep(&ts, nullptr);
  }
}

void runPipeline(Context& ctx, const std::vector<Stage*>& stages, int chunks, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const size_t n = stages.size();
  std::vector<int> finished(n, 0);  // chunks each stage has completed
  std::vector<bool> active(n, false);
  Backoff backoff;
  auto lastMove = Clock::now();
  while (true) {
    bool moved = false, all = true;
    for (size_t j = 0; j < n; ++j) {
      if (!active[j] && finished[j] < chunks && (j == 0 || finished[j - 1] > finished[j])) {
        stages[j]->start(finished[j]);
        active[j] = true;
        moved = true;
      }
      if (active[j]) {
        bool done = false;
        Status s = stages[j]->advance(moved, done);
        if (!s)
          throw Error(s.category(), what + ": stage " + stages[j]->describe() + ", chunk " +
                                        std::to_string(finished[j]) + ": " + s.message());
        if (done) {
          active[j] = false;
          ++finished[j];
          moved = true;
        }
      }
      all = all && finished[j] == chunks;
    }
    if (all) return;
    if (moved) {
      backoff.reset();
      lastMove = Clock::now();
      continue;
    }
    backoff.pause();
    if (Clock::now() - lastMove > ctx.settings().timeout) {
      std::string waiting;
      for (size_t j = 0; j < n; ++j)
        if (active[j]) waiting += (waiting.empty() ? "" : "; ") + stages[j]->describe() +
                                  " at chunk " + std::to_string(finished[j]);
      throw Error(ErrorCategory::kTimeout,
                  what + " made no progress for " +
                      std::to_string(ctx.settings().timeout.count() / 1000) +
                      " s (XSITE_TIMEOUT); waiting in: " + waiting +
                      ". A peer is stuck, dead, or called a different collective.");
    }
  }
}

}  // namespace xsite::coll
