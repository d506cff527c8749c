// The registry of transport backends. A backend is a folder of src/transport (its Connection and
// its Establisher, fabric.h) and one entry here; backends that share an establisher (TCP and WAN
// streams, one socket rendezvous) name the same factory. Fabric::establish() runs the
// establishers in this order on every rank.
#include "transport/fabric.h"

namespace xsite::transport {

namespace loopback { std::unique_ptr<Establisher> makeEstablisher(); }
namespace shm { std::unique_ptr<Establisher> makeEstablisher(); }
namespace tcp { std::unique_ptr<Establisher> makeEstablisher(); }  // TCP and WAN streams
#ifdef XSITE_HAVE_UCX
namespace ucx { std::unique_ptr<Establisher> makeEstablisher(); }
#endif

const std::vector<BackendInfo>& backends() {
  static const std::vector<BackendInfo> registry = {
      {Backend::kLoopback, "loopback", true, loopback::makeEstablisher},
      {Backend::kShm, "shm", true, shm::makeEstablisher},
#ifdef XSITE_HAVE_UCX
      {Backend::kUcx, "ucx", true, ucx::makeEstablisher},
#else
      {Backend::kUcx, "ucx", false, nullptr},
#endif
      {Backend::kTcp, "tcp", true, tcp::makeEstablisher},
      {Backend::kWan, "wan", true, tcp::makeEstablisher},
  };
  return registry;
}

const char* backendName(Backend b) noexcept {
  for (const BackendInfo& i : backends())
    if (i.backend == b) return i.name;
  return "?";
}

bool backendBuilt(Backend b) noexcept {
  for (const BackendInfo& i : backends())
    if (i.backend == b) return i.built;
  return false;
}

}  // namespace xsite::transport
