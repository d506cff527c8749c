// The shared-memory backend's establishment (fabric.h's Establisher): each rank creates the rings
// it reads from and its doorbell, the ranks meet in the store, map the rings they write to and
// open each other's doorbells, then unlink every name (nothing leaks, even after a crash).
#include <cerrno>

#include "transport/fabric.h"
#include "transport/shm/shm.h"
#include "util/log.h"
#include "util/socket.h"

namespace xsite::transport::shm {
namespace {

std::string shmName(uint64_t job, int from, int to, int channel) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/xsite-%016llx-%dto%d-c%d", static_cast<unsigned long long>(job), from,
           to, channel);
  return buf;
}

// A rank's shared-memory doorbell (ring_buffer.h), a FIFO beside the rings.
std::string doorbellPath(uint64_t job, int rank) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/dev/shm/xsite-%016llx-%d-bell", static_cast<unsigned long long>(job),
           rank);
  return buf;
}

class ShmEstablisher final : public Establisher {
 public:
  void establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& shm,
                 ConnectionMap& out) override;
};

}  // namespace

std::unique_ptr<Establisher> makeEstablisher() { return std::make_unique<ShmEstablisher>(); }

void ShmEstablisher::establish(const EstablishEnv& env, const std::vector<const LinkRequest*>& shm,
                               ConnectionMap& out) {
  const FabricOptions& opt = env.options;
  const int rank = env.rank;
  // Collective over all ranks (a rank without shm links still takes part in the barriers).
  std::map<const LinkRequest*, std::shared_ptr<RingMemory>> inbound;
  std::vector<std::string> created;
  // This rank's doorbell: without one (a file system that refuses FIFOs) its idle calls poll
  // the rings by time, as they do for any peer that could not open it.
  std::shared_ptr<const Doorbell> ownBell;
  const std::string bellPath = doorbellPath(opt.job, rank);
  if (!shm.empty() && !(ownBell = createDoorbell(bellPath)))
    XSITE_INFO(kNet, "no doorbell FIFO at %s (%s): shared-memory waits poll by time",
               bellPath.c_str(), errnoString(errno).c_str());
  for (const auto* l : shm) {
    std::string name = shmName(opt.job, l->peer, rank, l->channel);
    inbound[l] = createRing(name, opt.shmRingBytes);
    created.push_back(name);
  }
  auto cleanUp = [&] {
    for (const auto& n : created) unlinkRing(n);  // nothing leaks, even after a crash
    if (ownBell) unlinkDoorbell(bellPath);
  };
  try {
    bootstrap::allGather(env.store, opt.prefix + "/shm-created", rank, env.size, "", opt.timeout);
    // The peers' doorbells; a ring uses both ends' or neither.
    std::map<int, std::shared_ptr<const Doorbell>> peerBells;
    for (const auto* l : shm)
      if (ownBell && !peerBells.count(l->peer))
        peerBells[l->peer] = openDoorbell(doorbellPath(opt.job, l->peer));
    std::string opened = ",";  // the peers whose doorbell this rank holds: ",3,5,"
    for (const auto& [peer, bell] : peerBells)
      if (bell) opened += std::to_string(peer) + ",";
    const std::vector<std::string> openedBy =
        bootstrap::allGather(env.store, opt.prefix + "/shm-opened", rank, env.size, opened, opt.timeout);
    for (const auto* l : shm) {
      auto bell = peerBells.find(l->peer);
      const bool both = bell != peerBells.end() && bell->second &&
                        openedBy[l->peer].find("," + std::to_string(rank) + ",") != std::string::npos;
      out[{l->peer, l->channel}] = std::make_unique<RingConnection>(
          l->peer, env.label(*l), openRing(shmName(opt.job, rank, l->peer, l->channel)),
          inbound[l], both ? ownBell : nullptr, both ? bell->second : nullptr);
    }
    bootstrap::allGather(env.store, opt.prefix + "/shm-mapped", rank, env.size, "", opt.timeout);
  } catch (...) {
    cleanUp();
    throw;
  }
  cleanUp();
}

}  // namespace xsite::transport::shm
