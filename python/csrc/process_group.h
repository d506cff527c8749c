// The torch-facing layer of the xsite Python package: a c10d process group over one
// xsite::Communicator for CPU tensors. Everything that names torch's distributed API lives in
// this file and process_group.cc (torch 2.x renames ProcessGroup to Backend: a change here only).
//
// Collectives run in the order they were called on one worker thread of the group, which owns
// the communicator (an xsite::Communicator is used by one thread at a time); each call returns
// at once with a Work whose future completes when the collective has (DDP's comm hooks chain on
// it). An xsite error fails the Work and its future with xsite's message; the group is then
// failed, like the communicator under it, and every later call fails with the same cause.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "xsite/xsite.h"

namespace xsite::torch_backend {

// torch's store as xsite's (xsite/store.h): rendezvous through the store torch hands a backend,
// so the job binds no second port.
class TorchStore final : public xsite::Store {
 public:
  explicit TorchStore(c10::intrusive_ptr<c10d::Store> store) : store_(std::move(store)) {}
  void set(const std::string& key, const std::string& value) override;
  std::string setIfAbsent(const std::string& key, const std::string& value) override;
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override;

 private:
  std::mutex mu_;  // torch's store clients are not all safe to share between threads
  c10::intrusive_ptr<c10d::Store> store_;
};

// What a call may choose beyond torch's arguments (xsite.all_reduce, the DDP hook).
struct CallOptions {
  xsite::AllReduceOptions allReduce;
};

class ProcessGroupXsite final : public c10d::ProcessGroup {
 public:
  // Collective over the group's ranks: meets them at `store` and connects (xsite's settings from
  // the environment, `config` over them).
  ProcessGroupXsite(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                    std::chrono::milliseconds timeout, const xsite::Config& config);
  ~ProcessGroupXsite() override;

  const std::string getBackendName() const override { return "xsite"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(at::Tensor& output, at::Tensor& input,
                                                      const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;

  // xsite's own: an all-reduce with its options (algorithm, codec, error feedback and its key).
  c10::intrusive_ptr<c10d::Work> allreduceWith(at::Tensor& tensor, c10d::ReduceOp op,
                                               const CallOptions& options);
  // Like Communicator::abort (any thread): pending and later calls fail at once.
  void abort() noexcept;
  xsite::WanStats wanStats();
  std::string describeTopology();

 private:
  class Job;
  c10::intrusive_ptr<c10d::Work> enqueue(c10d::OpType type, const char* name,
                                         std::vector<at::Tensor> outputs,
                                         std::function<void(xsite::Communicator&)> run);
  void loop();

  TorchStore store_;
  std::unique_ptr<xsite::Communicator> comm_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace xsite::torch_backend
