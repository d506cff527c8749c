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
}

CollComm::~CollComm() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!queue_.empty()) ctx_->abort();
  for (int i = 0; i < kMaxRequests; ++i) slots_[i].op.reset();  // before the context
  magic = 0;
}

Request* CollComm::post(Work work, int bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < kMaxRequests; ++i) {
    Request& r = slots_[i];
    if (r.state != Request::kFree) continue;
    r.work = std::move(work);
    r.op.reset();
    r.started = false;
    r.bytes = bytes;
    r.message.clear();
    r.state = Request::kQueued;
    queue_.push_back(&r);
    return &r;
  }
  return nullptr;  // all slots in flight: NCCL calls again
}

void CollComm::fail(Request* r, ErrorCategory category, std::string message) {
  if (!broken_) {
    broken_ = true;
    brokenCategory_ = category;
    brokenMessage_ = message;
  }
  r->category = category;
  r->message = std::move(message);
  r->op.reset();
  r->state = Request::kFailed;
  queue_.pop_front();
}

void CollComm::progress() {
  const auto until = std::chrono::steady_clock::now() + kSlice;
  while (!queue_.empty()) {
    Request* r = queue_.front();
    if (broken_) {
      fail(r, brokenCategory_, "an earlier CollNet operation failed: " + brokenMessage_);
      continue;
    }
    try {
      if (!r->started) {
        r->started = true;
        r->op = r->work.start();
      }
      bool moved = false;
      if (r->op && !r->op->step(moved)) {
        if (!moved || std::chrono::steady_clock::now() > until) return;
        continue;
      }
      r->op.reset();
      if (r->work.finish) r->work.finish();
      r->work = Work{};
      r->state = Request::kDone;
      queue_.pop_front();
    } catch (const Error& e) {
      fail(r, e.category(), e.message());
    } catch (const std::bad_alloc&) {
      fail(r, ErrorCategory::kSystem, "out of memory");
    } catch (const std::exception& e) {
      fail(r, ErrorCategory::kInternal, e.what());
    }
  }
}

Status CollComm::test(Request* r, int* done, int* size) {
  std::lock_guard<std::mutex> lock(mu_);
  progress();
  switch (r->state) {
    case Request::kQueued:
      return Status::ok();
    case Request::kDone:
      *done = 1;
      if (size != nullptr) *size = r->bytes;
      r->state = Request::kFree;
      return Status::ok();
    case Request::kFailed: {
      Status s(r->category, r->message);
      r->work = Work{};
      r->state = Request::kFree;
      return s;
    }
    default:
      return Status(ErrorCategory::kInternal, "CollNet test of a request already completed");
  }
}

}  // namespace xsite::plugin::collnet
