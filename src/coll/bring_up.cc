#include "coll/bring_up.h"

#include <utility>
#include <vector>

namespace xsite::coll {

void agreeOnSchedule(bootstrap::Store& store, const std::string& key, int rank, int size,
                     const Settings& settings, const LinkSetup& links,
                     std::chrono::milliseconds timeout) {
  const std::vector<std::string> schedules =
      bootstrap::allGather(store, key, rank, size, scheduleSignature(settings, links), timeout);
  for (int r = 0; r < size; ++r) checkSameSchedule(schedules[rank], rank, schedules[r], r);
}

std::unique_ptr<Context> connectContext(int rank, topo::Topology topology, bootstrap::Store& store,
                                        transport::FabricOptions options,
                                        const BackendChoice& backends, const Settings& settings) {
  auto fabric = std::make_unique<transport::Fabric>(rank, topology.size(), store, std::move(options));
  fabric->establish(planLinks(topology, rank, backends, settings.wanLanes));
  return std::make_unique<Context>(rank, std::move(topology), std::move(fabric), settings);
}

}  // namespace xsite::coll
