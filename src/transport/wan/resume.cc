#include "transport/wan/resume.h"

#include <sys/socket.h>


#include "util/log.h"

namespace xsite::transport::wan {

ResumeAcceptor::ResumeAcceptor(Fd listener, bootstrap::JobSecret secret)
    : listener_(std::move(listener)), secret_(std::move(secret)) {
  setNonBlocking(listener_.get(), true);
}

bool ResumeAcceptor::add(uint64_t job, int peer, int channel, WanLink* link) {
  std::lock_guard<std::mutex> lk(linksMu_);
  return links_.emplace(std::make_tuple(job, peer, channel), link).second;
}

void ResumeAcceptor::remove(WanLink* link) {
  std::lock_guard<std::mutex> lk(linksMu_);
  for (auto it = links_.begin(); it != links_.end();)
    it = it->second == link ? links_.erase(it) : std::next(it);
}

bool ResumeAcceptor::read(Caller& c) noexcept {
  if (!c.authed) {
    const auto st = c.auth.step(c.fd.get());
    if (st == bootstrap::AuthAccept::State::kWaiting) return true;
    if (st == bootstrap::AuthAccept::State::kClosed) return false;  // a probe: is this rank alive?
    if (st == bootstrap::AuthAccept::State::kRefused) {
      if (!warned_)
        XSITE_WARN(kNet, "dropping a connection to the WAN listener that did not prove it knows "
                         "the job's secret (further ones are dropped silently)");
      warned_ = true;
      return false;
    }
    c.authed = true;
  }
  const ReadProgress got = readToward(c.fd.get(), &c.hello, sizeof(c.hello), c.got);
  if (got != ReadProgress::kDone) return got == ReadProgress::kWaiting;  // closed: it gave up
  const ResumeHello& h = c.hello;
  std::lock_guard<std::mutex> lk(linksMu_);
  auto it = links_.find({h.job, h.rank, h.channel});
  if (h.magic == ResumeHello::kMagic && it == links_.end()) {
    // It proved the secret: a rank of the job whose link this side has closed. Say so, so that
    // it stops dialing (a fresh socket has room for the reply).
    const ResumeReply gone{ResumeReply::kMagic, ResumeReply::kNoSuchLink, 0};
    (void)!::send(c.fd.get(), &gone, sizeof(gone), MSG_NOSIGNAL | MSG_DONTWAIT);
    return false;
  }
  if (h.magic != ResumeHello::kMagic || h.stream >= it->second->streamCount()) {
    if (!warned_)
      XSITE_WARN(kNet, "dropping a connection to the WAN listener that did not re-open a stream "
                       "of this job (further ones are dropped silently)");
    warned_ = true;
    return false;
  }
  it->second->adopt(h.stream, std::move(c.fd), h.recvBelow);
  return false;
}

void ResumeAcceptor::poll() noexcept {
  while (true) {
    Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) break;
    if (callers_.size() >= kMaxCallers) callers_.pop_front();  // the oldest waits no longer
    callers_.push_back(Caller{std::move(fd), bootstrap::AuthAccept(secret_), false, {}, 0,
                              std::chrono::steady_clock::now() + kHelloLimit});
    if (!callers_.back().auth.start(callers_.back().fd.get())) callers_.pop_back();
  }
  const auto now = std::chrono::steady_clock::now();
  for (auto it = callers_.begin(); it != callers_.end();)
    it = read(*it) && now < it->deadline ? std::next(it) : callers_.erase(it);
}

}  // namespace xsite::transport::wan
