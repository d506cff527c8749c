// xsite::Store: the key-value store the ranks of a job meet at (rendezvous) and report failures
// to. xsite brings its own (a TCP store rank 0 serves, Communicator::fromEnvironment); a
// framework that has one already, such as torch.distributed's c10d::Store, adapts it to this
// interface and hands it to Communicator::fromStore, so that the job binds no second port.
// Implementations must be safe to call from several threads at once.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace xsite {

class Store {
 public:
  using Duration = std::chrono::milliseconds;
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // Sets `key` to `value` unless it exists; returns what `key` holds afterwards (`value` when this
  // call set it). One step at the store: of several callers, exactly one sees its own value.
  virtual std::string setIfAbsent(const std::string& key, const std::string& value) = 0;
  // Waits until every key exists. True: `out` holds their values in order. False (the timeout
  // ran out): `out` holds the keys still missing.
  virtual bool waitFor(const std::vector<std::string>& keys, Duration timeout,
                       std::vector<std::string>& out) = 0;
  // waitFor that throws Error(kTimeout) naming the missing keys.
  std::vector<std::string> get(const std::vector<std::string>& keys, Duration timeout);
  std::string get(const std::string& key, Duration timeout) { return get(std::vector{key}, timeout)[0]; }
};

}  // namespace xsite
