#include "coll/pipeline.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>

namespace xsite::coll {

void Backoff::pause(const std::vector<pollfd>* fds) {
  ++idle_;
  if (idle_ < kSpins / 2) {
    __builtin_ia32_pause();
  } else if (idle_ < kSpins) {
    sched_yield();
  } else if (fds != nullptr) {
    // Every active connection has a descriptor: sleep until one can move (bounded, so that a
    // timeout or a dead peer is still noticed).
    ::poll(const_cast<pollfd*>(fds->data()), fds->size(), 5);
  } else {
    // Sleep longer the longer nothing moves (20 us up to 200 us), leaving the cores to ranks
    // and to the kernel's network stack that have work.
    long ns = std::min<long>(200000, 20000L * (1 + (idle_ - kSpins) / 16));
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
  }
}

void runPipeline(Context& ctx, const std::vector<std::vector<Stage*>>& stages, int chunks,
                 const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const size_t n = stages.size();
  std::vector<std::vector<char>> done(n, std::vector<char>(chunks, 0));
  std::vector<std::vector<int>> running(n);  // per lane: the chunk it works on, or -1
  std::vector<int> nextStart(n, 0), finished(n, 0);
  for (size_t j = 0; j < n; ++j) running[j].assign(stages[j].size(), -1);
  Backoff backoff;
  std::vector<pollfd> pfds;
  auto lastMove = Clock::now();
  while (true) {
    if (ctx.failed()) {
      const Error why = ctx.failure();
      throw Error(why.category(), what + ": " + why.message());
    }
    bool moved = false, all = true;
    for (size_t j = 0; j < n; ++j) {
      const size_t lanes = stages[j].size();
      while (nextStart[j] < chunks) {
        const int c = nextStart[j];
        const size_t lane = static_cast<size_t>(c) % lanes;
        if (running[j][lane] >= 0 || (j > 0 && !done[j - 1][c])) break;
        stages[j][lane]->start(c);
        running[j][lane] = c;
        ++nextStart[j];
        moved = true;
      }
      for (size_t lane = 0; lane < lanes; ++lane) {
        const int c = running[j][lane];
        if (c < 0) continue;
        bool stageDone = false;
        Status s = stages[j][lane]->advance(moved, stageDone);
        if (!s)
          throw Error(s.category(), what + ": stage " + stages[j][lane]->describe() + ", chunk " +
                                        std::to_string(c) + ": " + s.message());
        if (stageDone) {
          done[j][c] = 1;
          ++finished[j];
          running[j][lane] = -1;
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
    bool waitable = !backoff.spinning();
    pfds.clear();
    for (size_t j = 0; j < n && waitable; ++j)
      for (size_t lane = 0; lane < stages[j].size() && waitable; ++lane)
        if (running[j][lane] >= 0) waitable = stages[j][lane]->appendPollFds(pfds);
    backoff.pause(waitable ? &pfds : nullptr);
    if (Clock::now() - lastMove > ctx.settings().timeout) {
      std::string waiting;
      for (size_t j = 0; j < n; ++j)
        for (size_t lane = 0; lane < stages[j].size(); ++lane)
          if (running[j][lane] >= 0)
            waiting += (waiting.empty() ? "" : "; ") + stages[j][lane]->describe() + " at chunk " +
                       std::to_string(running[j][lane]);
      throw Error(ErrorCategory::kTimeout,
                  what + " made no progress for " +
                      std::to_string(ctx.settings().timeout.count() / 1000) +
                      " s (XSITE_TIMEOUT); waiting in: " + waiting +
                      ". A peer is stuck, dead, or called a different collective.");
    }
  }
}

}  // namespace xsite::coll
