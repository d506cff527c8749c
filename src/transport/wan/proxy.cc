#include "transport/wan/proxy.h"

#include <poll.h>

#include <algorithm>

namespace xsite::transport::wan {

WanProxy::WanProxy(std::vector<WanLink*> links, std::unique_ptr<ResumeAcceptor> acceptor)
    : links_(std::move(links)), owned_(std::move(acceptor)) {
  if (owned_) acceptors_.push_back(owned_.get());
  thread_ = std::thread([this] { run(); });
}

WanProxy::~WanProxy() {
  stop_ = true;
  thread_.join();
}

// True while anything waits to be written.
bool WanProxy::flushAll(bool& moved) {
  std::lock_guard<std::mutex> lk(linksMu_);
  for (ResumeAcceptor* a : acceptors_) a->poll();
  bool pending = false;
  for (WanLink* l : links_) {
    l->heal();
    l->adapt();
    l->flush(moved, pending);
  }
  return pending;
}

void WanProxy::run() {
  std::vector<pollfd> pfds;
  std::vector<int> fds;
  while (!stop_.load(std::memory_order_relaxed)) {
    bool moved = false;
    if (!flushAll(moved)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the callers drive new sends
      continue;
    }
    if (moved) continue;
    fds.clear();
    {
      std::lock_guard<std::mutex> lk(linksMu_);
      for (WanLink* l : links_) l->pendingFds(fds);
    }
    pfds.clear();
    for (int fd : fds) pfds.push_back({fd, POLLOUT, 0});
    ::poll(pfds.data(), pfds.size(), 1);  // wait for socket space
  }
}

void WanProxy::attach(WanLink* l) {
  std::lock_guard<std::mutex> lk(linksMu_);
  links_.push_back(l);
}

void WanProxy::detach(WanLink* l) {
  std::lock_guard<std::mutex> lk(linksMu_);
  links_.erase(std::remove(links_.begin(), links_.end(), l), links_.end());
}

void WanProxy::attach(ResumeAcceptor* a) {
  std::lock_guard<std::mutex> lk(linksMu_);
  acceptors_.push_back(a);
}

void WanProxy::detach(ResumeAcceptor* a) {
  std::lock_guard<std::mutex> lk(linksMu_);
  acceptors_.erase(std::remove(acceptors_.begin(), acceptors_.end(), a), acceptors_.end());
}

}  // namespace xsite::transport::wan
