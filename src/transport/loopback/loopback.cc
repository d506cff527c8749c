// The loopback backend's establishment (fabric.h's Establisher): ranks that are threads of one
// process exchange bytes through heap rings of their LoopbackHub; nothing to meet over.
#include "transport/fabric.h"

namespace xsite::transport {

std::shared_ptr<RingMemory> LoopbackHub::ring(int from, int to, int channel) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& r = rings_[{from, to, channel}];
  if (!r) r = makeHeapRing(ringBytes_);
  return r;
}

namespace loopback {
namespace {

class LoopbackEstablisher final : public Establisher {
 public:
  void establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& links,
                 ConnectionMap& out) override {
    LoopbackHub* hub = env.options.hub.get();
    if (!links.empty() && hub == nullptr)
      throw Error(ErrorCategory::kInternal, "loopback link without a hub");
    for (const LinkRequest* l : links)
      out[{l->peer, l->channel}] = std::make_unique<RingConnection>(
          l->peer, env.label(*l), hub->ring(env.rank, l->peer, l->channel),
          hub->ring(l->peer, env.rank, l->channel));
  }
};

}  // namespace

std::unique_ptr<Establisher> makeEstablisher() { return std::make_unique<LoopbackEstablisher>(); }

}  // namespace loopback
}  // namespace xsite::transport
