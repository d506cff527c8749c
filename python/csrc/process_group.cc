#include "process_group.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <optional>
#include <stdexcept>

namespace xsite::torch_backend {

namespace {

std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

[[noreturn]] void unsupported(const std::string& what) {
  throw std::invalid_argument("xsite backend: " + what);
}

xsite::DataType dataTypeOf(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kChar: return DataType::kInt8;
    case at::kByte: return DataType::kUint8;
    case at::kInt: return DataType::kInt32;
    case at::kLong: return DataType::kInt64;
    case at::kHalf: return DataType::kFloat16;
    case at::kFloat: return DataType::kFloat32;
    case at::kDouble: return DataType::kFloat64;
    case at::kBFloat16: return DataType::kBfloat16;
    default: unsupported(std::string("tensors of ") + c10::toString(t.scalar_type()) + " are not supported");
  }
}

xsite::ReduceOp reduceOpOf(const c10d::ReduceOp& op) {
  switch (op.op_) {
    case c10d::ReduceOp::SUM: return ReduceOp::kSum;
    case c10d::ReduceOp::PRODUCT: return ReduceOp::kProd;
    case c10d::ReduceOp::MIN: return ReduceOp::kMin;
    case c10d::ReduceOp::MAX: return ReduceOp::kMax;
    case c10d::ReduceOp::AVG: return ReduceOp::kAvg;
    default: unsupported("reduce op " + std::to_string(static_cast<int>(op.op_)) +
                         " is not supported (sum, product, min, max, avg are)");
  }
}

// A CPU tensor the collective can work on in place.
void checkTensor(const at::Tensor& t, const char* what) {
  if (!t.device().is_cpu())
    unsupported(std::string(what) + " is on " + t.device().str() +
                "; the xsite backend takes CPU tensors (GPU jobs reach xsite through NCCL's plugin)");
  if (!t.is_contiguous()) unsupported(std::string(what) + " is not contiguous");
  if (t.is_sparse()) unsupported(std::string(what) + " is sparse");
}

const at::Tensor& single(const std::vector<at::Tensor>& tensors, const char* call) {
  if (tensors.size() != 1)
    unsupported(std::string(call) + " takes one tensor per process, got " + std::to_string(tensors.size()));
  checkTensor(tensors[0], "the tensor");
  return tensors[0];
}

void sameShape(const at::Tensor& a, const at::Tensor& b, const char* what) {
  if (a.scalar_type() != b.scalar_type() || a.numel() != b.numel())
    unsupported(std::string(what) + ": " + std::to_string(b.numel()) + " elements of " +
                c10::toString(b.scalar_type()) + " where " + std::to_string(a.numel()) + " of " +
                c10::toString(a.scalar_type()) + " were expected");
}

// The list torch passes per rank (all-gather's outputs, reduce-scatter's inputs): one CPU tensor
// per rank, each like `like`.
const std::vector<at::Tensor>& perRank(const std::vector<std::vector<at::Tensor>>& lists,
                                       const at::Tensor& like, int size, const char* what) {
  if (lists.size() != 1 || static_cast<int>(lists[0].size()) != size)
    unsupported(std::string(what) + ": the list must hold one tensor per rank (" +
                std::to_string(size) + ")");
  for (const auto& t : lists[0]) {
    checkTensor(t, "a tensor of the list");
    sameShape(like, t, what);
  }
  return lists[0];
}

// The tensors' elements one after the other, in one new tensor.
at::Tensor concatenated(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> rows;
  for (const auto& t : tensors) rows.push_back(t.reshape({-1}));
  return at::cat(rows);
}

}  // namespace

// ---- store --------------------------------------------------------------------------------

void TorchStore::set(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lk(mu_);
  store_->set(key, bytes(value));
}

std::string TorchStore::setIfAbsent(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lk(mu_);
  // c10d's compareSet with an empty expected value sets a missing key and returns what it holds.
  return text(store_->compareSet(key, {}, bytes(value)));
}

bool TorchStore::waitFor(const std::vector<std::string>& keys, Duration timeout,
                         std::vector<std::string>& out) {
  out.clear();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Polls with check() rather than wait(): one thread's long wait would hold the store from the
  // others (and c10d's wait reports a timeout as an exception of no particular type).
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    bool all;
    {
      std::lock_guard<std::mutex> lk(mu_);
      all = store_->check(keys);
      if (all) {
        for (const auto& k : keys) out.push_back(text(store_->get(k)));
        return true;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& k : keys)
    if (!store_->check({k})) out.push_back(k);
  return false;
}

// ---- work ---------------------------------------------------------------------------------

class ProcessGroupXsite::Job {
 public:
  class Work final : public c10d::Work {
   public:
    Work(int rank, c10d::OpType type, const char* name, std::vector<at::Tensor> outputs)
        : c10d::Work(rank, type, name),
          outputs_(std::move(outputs)),
          future_(c10::make_intrusive<c10::ivalue::Future>(
              c10::ListType::create(c10::TensorType::get()))) {}
    std::vector<at::Tensor> result() override { return outputs_; }
    c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }
    void complete(std::exception_ptr error) {
      if (error)
        future_->setError(error);
      else
        future_->markCompleted(c10::IValue(outputs_));
      finish(error);
    }

   private:
    std::vector<at::Tensor> outputs_;
    c10::intrusive_ptr<c10::ivalue::Future> future_;
  };

  c10::intrusive_ptr<Work> work;
  std::function<void(xsite::Communicator&)> run;
};

// ---- process group ------------------------------------------------------------------------

ProcessGroupXsite::ProcessGroupXsite(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                     int size, std::chrono::milliseconds timeout,
                                     const xsite::Config& config)
    : c10d::ProcessGroup(rank, size), store_(store) {
  xsite::Config c = config;
  if (!c.timeoutSeconds) c.timeoutSeconds = std::chrono::duration<double>(timeout).count();
  if (!c.bootstrapTimeoutSeconds) c.bootstrapTimeoutSeconds = std::chrono::duration<double>(timeout).count();
  comm_ = std::make_unique<xsite::Communicator>(xsite::Communicator::fromStore(store_, rank, size, c));
  worker_ = std::thread([this] { loop(); });
}

ProcessGroupXsite::~ProcessGroupXsite() {
  // The last reference usually drops in Python, holding the GIL, while the worker may still be
  // releasing a finished job's tensors, which takes the GIL (torch frees a tensor's Python
  // object): joining with the GIL held deadlocks. Wait and close without it.
  std::optional<pybind11::gil_scoped_release> nogil;
  if (Py_IsInitialized() && PyGILState_Check()) nogil.emplace();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();  // runs what was queued first, as c10d's groups do
  comm_.reset();
}

void ProcessGroupXsite::loop() {
  while (true) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      job->run(*comm_);
    } catch (const xsite::Error& e) {
      // Python sees a RuntimeError carrying xsite's message (which names the rank, the cause).
      error = std::make_exception_ptr(std::runtime_error(e.what()));
    } catch (...) {
      error = std::current_exception();
    }
    job->work->complete(error);
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::enqueue(
    c10d::OpType type, const char* name, std::vector<at::Tensor> outputs,
    std::function<void(xsite::Communicator&)> run) {
  auto job = std::make_unique<Job>();
  job->work = c10::make_intrusive<Job::Work>(getRank(), type, name, std::move(outputs));
  job->run = std::move(run);
  c10::intrusive_ptr<c10d::Work> work = job->work;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return work;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::broadcast(std::vector<at::Tensor>& tensors,
                                                            const c10d::BroadcastOptions& opts) {
  at::Tensor t = single(tensors, "broadcast");
  const int root = static_cast<int>(opts.rootRank);
  if (opts.rootTensor != 0) unsupported("broadcast: rootTensor must be 0 (one tensor per process)");
  return enqueue(c10d::OpType::BROADCAST, "xsite:broadcast", {t}, [t, root](Communicator& c) {
    c.broadcast(t.data_ptr(), t.data_ptr(), t.numel(), dataTypeOf(t), root);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::allreduce(std::vector<at::Tensor>& tensors,
                                                            const c10d::AllreduceOptions& opts) {
  return allreduceWith(const_cast<at::Tensor&>(single(tensors, "allreduce")), opts.reduceOp, CallOptions{});
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::allreduceWith(at::Tensor& tensor,
                                                                c10d::ReduceOp op,
                                                                const CallOptions& options) {
  checkTensor(tensor, "the tensor");
  at::Tensor t = tensor;
  const DataType type = dataTypeOf(t);
  const xsite::ReduceOp xop = reduceOpOf(op);
  const AllReduceOptions o = options.allReduce;
  return enqueue(c10d::OpType::ALLREDUCE, "xsite:all_reduce", {t}, [t, type, xop, o](Communicator& c) {
    c.allReduce(t.data_ptr(), t.data_ptr(), t.numel(), type, xop, o);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::allreduce_coalesced(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) {
  if (tensors.empty()) unsupported("allreduce_coalesced: no tensors");
  for (const auto& t : tensors) {
    checkTensor(t, "a tensor");
    if (t.scalar_type() != tensors[0].scalar_type())
      unsupported("allreduce_coalesced: the tensors must share one dtype");
  }
  std::vector<at::Tensor> ts = tensors;
  const xsite::ReduceOp op = reduceOpOf(opts.reduceOp);
  return enqueue(c10d::OpType::ALLREDUCE_COALESCED, "xsite:all_reduce_coalesced", ts,
                 [ts, op](Communicator& c) {
                   at::Tensor flat = concatenated(ts);
                   c.allReduce(flat.data_ptr(), flat.data_ptr(), flat.numel(), dataTypeOf(flat), op);
                   int64_t at = 0;
                   for (const auto& t : ts) {
                     t.copy_(flat.narrow(0, at, t.numel()).view_as(t));
                     at += t.numel();
                   }
                 });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions&) {
  at::Tensor in = single(inputs, "allgather");
  std::vector<at::Tensor> outs = perRank(outputs, in, getSize(), "allgather's outputs");
  return enqueue(c10d::OpType::ALLGATHER, "xsite:all_gather", outs, [in, outs](Communicator& c) {
    at::Tensor flat = at::empty({static_cast<int64_t>(outs.size()) * in.numel()}, in.options());
    c.allGather(in.data_ptr(), flat.data_ptr(), in.numel(), dataTypeOf(in));
    for (size_t r = 0; r < outs.size(); ++r)
      outs[r].copy_(flat.narrow(0, static_cast<int64_t>(r) * in.numel(), in.numel()).view_as(outs[r]));
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::_allgather_base(at::Tensor& output,
                                                                  at::Tensor& input,
                                                                  const c10d::AllgatherOptions&) {
  checkTensor(input, "the input");
  checkTensor(output, "the output");
  if (output.scalar_type() != input.scalar_type() || output.numel() != input.numel() * getSize())
    unsupported("_allgather_base: the output must hold world size (" + std::to_string(getSize()) +
                ") x the input's " + std::to_string(input.numel()) + " elements of its dtype");
  at::Tensor in = input, out = output;
  return enqueue(c10d::OpType::_ALLGATHER_BASE, "xsite:_allgather_base", {out}, [in, out](Communicator& c) {
    c.allGather(in.data_ptr(), out.data_ptr(), in.numel(), dataTypeOf(in));
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  at::Tensor out = single(outputs, "reduce_scatter");
  std::vector<at::Tensor> ins = perRank(inputs, out, getSize(), "reduce_scatter's inputs");
  const xsite::ReduceOp op = reduceOpOf(opts.reduceOp);
  return enqueue(c10d::OpType::REDUCE_SCATTER, "xsite:reduce_scatter", {out}, [out, ins, op](Communicator& c) {
    at::Tensor send = concatenated(ins);
    c.reduceScatter(send.data_ptr(), out.data_ptr(), out.numel(), dataTypeOf(out), op);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::_reduce_scatter_base(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) {
  checkTensor(input, "the input");
  checkTensor(output, "the output");
  if (output.scalar_type() != input.scalar_type() || input.numel() != output.numel() * getSize())
    unsupported("_reduce_scatter_base: the input must hold world size (" + std::to_string(getSize()) +
                ") x the output's " + std::to_string(output.numel()) + " elements of its dtype");
  at::Tensor in = input, out = output;
  const xsite::ReduceOp op = reduceOpOf(opts.reduceOp);
  return enqueue(c10d::OpType::_REDUCE_SCATTER_BASE, "xsite:_reduce_scatter_base", {out},
                 [in, out, op](Communicator& c) {
                   c.reduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), dataTypeOf(out), op);
                 });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupXsite::barrier(const c10d::BarrierOptions&) {
  return enqueue(c10d::OpType::BARRIER, "xsite:barrier", {}, [](Communicator& c) { c.barrier(); });
}

void ProcessGroupXsite::abort() noexcept {
  if (comm_) comm_->abort();
}

// Through the worker, in call order: the communicator is the worker's.
xsite::WanStats ProcessGroupXsite::wanStats() {
  xsite::WanStats s;
  enqueue(c10d::OpType::UNKNOWN, "xsite:wan_stats", {}, [&s](Communicator& c) { s = c.wanStats(); })
      ->wait();
  return s;
}

std::string ProcessGroupXsite::describeTopology() {
  std::string s;
  enqueue(c10d::OpType::UNKNOWN, "xsite:topology", {}, [&s](Communicator& c) { s = c.describeTopology(); })
      ->wait();
  return s;
}

}  // namespace xsite::torch_backend
