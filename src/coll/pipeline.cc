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

Stage* Operation::own(std::unique_ptr<Stage> stage) {
  owned_.push_back(std::move(stage));
  return owned_.back().get();
}

void Operation::schedule(std::vector<std::vector<Stage*>> stages, int chunks) {
  stages_ = std::move(stages);
  chunks_ = chunks;
  const size_t n = stages_.size();
  done_.assign(n, std::vector<char>(static_cast<size_t>(chunks), 0));
  running_.resize(n);
  for (size_t j = 0; j < n; ++j) running_[j].assign(stages_[j].size(), -1);
  nextStart_.assign(n, 0);
  finished_.assign(n, 0);
  lastMove_ = std::chrono::steady_clock::now();
}

bool Operation::step(bool& moved) {
  if (complete_) return true;
  if (ctx_.failed()) {
    const Error why = ctx_.failure();
    throw Error(why.category(), what_ + ": " + why.message());
  }
  bool any = false, all = true;
  for (size_t j = 0; j < stages_.size(); ++j) {
    const size_t lanes = stages_[j].size();
    while (nextStart_[j] < chunks_) {
      const int c = nextStart_[j];
      const size_t lane = static_cast<size_t>(c) % lanes;
      if (running_[j][lane] >= 0 || (j > 0 && !done_[j - 1][c])) break;
      stages_[j][lane]->start(c);
      running_[j][lane] = c;
      ++nextStart_[j];
      any = true;
    }
    for (size_t lane = 0; lane < lanes; ++lane) {
      const int c = running_[j][lane];
      if (c < 0) continue;
      bool stageDone = false;
      Status s = stages_[j][lane]->advance(any, stageDone);
      if (!s)
        throw Error(s.category(), what_ + ": stage " + stages_[j][lane]->describe() + ", chunk " +
                                      std::to_string(c) + ": " + s.message());
      if (stageDone) {
        done_[j][c] = 1;
        ++finished_[j];
        running_[j][lane] = -1;
        any = true;
      }
    }
    all = all && finished_[j] == chunks_;
  }
  const auto now = std::chrono::steady_clock::now();
  if (any) {
    moved = true;
    lastMove_ = now;
  } else if (now - lastMove_ > ctx_.settings().timeout) {
    std::string waiting;
    for (size_t j = 0; j < stages_.size(); ++j)
      for (size_t lane = 0; lane < stages_[j].size(); ++lane)
        if (running_[j][lane] >= 0)
          waiting += (waiting.empty() ? "" : "; ") + stages_[j][lane]->describe() + " at chunk " +
                     std::to_string(running_[j][lane]);
    throw Error(ErrorCategory::kTimeout,
                what_ + " made no progress for " +
                    std::to_string(ctx_.settings().timeout.count() / 1000) +
                    " s (XSITE_TIMEOUT); waiting in: " + waiting +
                    ". A peer is stuck, dead, or called a different collective.");
  }
  complete_ = all;
  return complete_;
}

bool Operation::waitable(std::vector<pollfd>& fds) const {
  fds.clear();
  for (size_t j = 0; j < stages_.size(); ++j)
    for (size_t lane = 0; lane < stages_[j].size(); ++lane)
      if (running_[j][lane] >= 0 && !stages_[j][lane]->appendPollFds(fds)) return false;
  return true;
}

void Operation::run() {
  Backoff backoff;
  std::vector<pollfd> fds;
  while (true) {
    bool moved = false;
    if (step(moved)) return;
    if (moved) {
      backoff.reset();
      continue;
    }
    const bool sleepOnFds = !backoff.spinning() && waitable(fds);
    backoff.pause(sleepOnFds ? &fds : nullptr);
  }
}

}  // namespace xsite::coll
