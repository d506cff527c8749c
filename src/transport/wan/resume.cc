#include "transport/wan/resume.h"

#include <sys/socket.h>

#include <cstring>

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

void ResumeAcceptor::handOver(Fd fd, const ResumeHello& h) noexcept {
  std::lock_guard<std::mutex> lk(linksMu_);
  auto it = links_.find({h.job, h.rank, h.channel});
  if (h.magic == ResumeHello::kMagic && it == links_.end()) {
    // It proved the secret: a rank of the job whose link this side has closed. Say so, so that
    // it stops dialing (a fresh socket has room for the reply).
    const ResumeReply gone{ResumeReply::kMagic, ResumeReply::kNoSuchLink, 0};
    (void)!::send(fd.get(), &gone, sizeof(gone), MSG_NOSIGNAL | MSG_DONTWAIT);
    return;
  }
  if (h.magic != ResumeHello::kMagic || h.stream >= it->second->streamCount()) {
    if (!warned_)
      XSITE_WARN(kNet, "dropping a connection to the WAN listener that did not re-open a stream "
                       "of this job (further ones are dropped silently)");
    warned_ = true;
    return;
  }
  it->second->adopt(h.stream, std::move(fd), h.recvBelow);
}

void ResumeAcceptor::poll() noexcept {
  auto dropped = [this](bootstrap::AuthListener::Drop why, const std::string&) {
    if (why != bootstrap::AuthListener::Drop::kRefused) return;  // closed: a probe (is it alive?)
    if (!warned_)
      XSITE_WARN(kNet, "dropping a connection to the WAN listener that did not prove it knows "
                       "the job's secret (further ones are dropped silently)");
    warned_ = true;
  };
  auto ready = callers_.poll(listener_.get(), dropped);
  if (!ready) return;  // the listener failed: the links that need it fail by their timeout
  for (auto& c : ready.value()) {
    ResumeHello h;
    std::memcpy(&h, c.hello.data(), sizeof(h));
    handOver(std::move(c.fd), h);
  }
}

}  // namespace xsite::transport::wan
