// A reusable meeting point for ranks run as threads. wait() gives up after a bound and says so,
// so a rank that bailed out on a failed assertion cannot hang the others.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace xsite::testing {

class ThreadBarrier {
 public:
  explicit ThreadBarrier(int n, std::chrono::seconds limit = std::chrono::seconds(120))
      : n_(n), limit_(limit) {}
  // False when the others did not arrive within the limit.
  [[nodiscard]] bool wait() {
    std::unique_lock<std::mutex> lk(mu_);
    int gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
      return true;
    }
    return cv_.wait_for(lk, limit_, [&] { return gen != gen_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0, gen_ = 0;
  std::chrono::seconds limit_;
};

}  // namespace xsite::testing
