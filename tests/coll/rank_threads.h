// Runs one function per rank of a LocalGroup, each on its own thread with its own Communicator,
// and rethrows the first failure. A reusable barrier lets tests compare ranks' results.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "xsite/xsite.h"

namespace xsite::testing {

class ThreadBarrier {
 public:
  explicit ThreadBarrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lk(mu_);
    int gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return gen != gen_; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0, gen_ = 0;
};

// Calls fn(comm) on every rank; returns the per-rank exceptions (nullptr where none).
inline std::vector<std::exception_ptr> runRanksCollectErrors(
    LocalGroup& group, const std::function<void(Communicator&)>& fn) {
  const int n = group.size();
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        Communicator comm = Communicator::fromLocalGroup(group, r);
        fn(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

inline void runRanks(LocalGroup& group, const std::function<void(Communicator&)>& fn) {
  for (auto& e : runRanksCollectErrors(group, fn))
    if (e) std::rethrow_exception(e);
}

}  // namespace xsite::testing
