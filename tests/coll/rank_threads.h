// Runs one function per rank of a LocalGroup, each on its own thread with its own Communicator,
// and rethrows the first failure.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/thread_barrier.h"
#include "xsite/xsite.h"

namespace xsite::testing {

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
