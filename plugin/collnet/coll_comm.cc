#include "plugin/collnet/coll_comm.h"

#include "plugin/collnet/collnet.h"

namespace xsite::plugin::collnet {

static_assert(sizeof(Handle) <= NCCL_NET_HANDLE_MAXSIZE, "the CollNet handle fits NCCL's buffer");

CollComm::CollComm(std::unique_ptr<bootstrap::TcpStoreServer> server,
                   std::unique_ptr<bootstrap::Store> store, std::unique_ptr<coll::Context> ctx)
    : server_(std::move(server)),
      store_(std::move(store)),
      ctx_(std::move(ctx)),
      slots_(new Request[kMaxRequests]) {
  for (int i = 0; i < kMaxRequests; ++i) slots_[i].comm = this;
  worker_ = std::thread([this] { run(); });
}

CollComm::~CollComm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (running_ || !queue_.empty()) ctx_->abort();
  }
  cv_.notify_all();
  worker_.join();
  magic = 0;
}

Request* CollComm::post(std::function<void()> work, int bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < kMaxRequests; ++i) {
    Request& r = slots_[i];
    if (r.state.load(std::memory_order_acquire) != Request::kFree) continue;
    r.work = std::move(work);
    r.bytes = bytes;
    r.message.clear();
    r.state.store(Request::kQueued, std::memory_order_release);
    queue_.push_back(&r);
    cv_.notify_one();
    return &r;
  }
  return nullptr;  // all slots in flight: NCCL calls again
}

void CollComm::release(Request* r) {
  std::lock_guard<std::mutex> lock(mu_);
  r->work = nullptr;
  r->state.store(Request::kFree, std::memory_order_release);
}

// Runs the queue in order. After a failure every later operation fails too, with the first
// failure's message: the ranks no longer agree on where the byte streams stand.
void CollComm::run() {
  bool broken = false;
  ErrorCategory brokenCategory = ErrorCategory::kInternal;
  std::string brokenMessage;
  for (;;) {
    Request* r = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      r = queue_.front();
      queue_.pop_front();
      running_ = true;
    }
    struct Ran {
      CollComm& c;
      ~Ran() {
        std::lock_guard<std::mutex> lock(c.mu_);
        c.running_ = false;
      }
    } ran{*this};
    if (broken) {
      r->category = brokenCategory;
      r->message = "an earlier CollNet operation failed: " + brokenMessage;
      r->state.store(Request::kFailed, std::memory_order_release);
      continue;
    }
    try {
      r->work();
      r->state.store(Request::kDone, std::memory_order_release);
      continue;
    } catch (const Error& e) {
      r->category = e.category();
      r->message = e.message();
    } catch (const std::bad_alloc&) {
      r->category = ErrorCategory::kSystem;
      r->message = "out of memory";
    } catch (const std::exception& e) {
      r->category = ErrorCategory::kInternal;
      r->message = e.what();
    }
    broken = true;
    brokenCategory = r->category;
    brokenMessage = r->message;
    r->state.store(Request::kFailed, std::memory_order_release);
  }
}

}  // namespace xsite::plugin::collnet
