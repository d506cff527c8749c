// The bring-up of a communicator's collectives, one for the public API (src/api) and the NCCL
// plugin's CollNet: the ranks agree on their schedule, then the fabric connects every link the
// topology needs and the Context runs over it. What comes before (where the ranks sit, which
// address each listens on) differs between the two and stays with them.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "bootstrap/store.h"
#include "coll/context.h"
#include "coll/settings.h"
#include "topo/topology.h"

namespace xsite::coll {

// Every rank publishes its schedule signature under `key` and checks everyone's: a disagreement
// is Error(kInvalidUsage) naming the xsite versions or the first variable that differs, on every
// rank alike (scheduleSignature, checkSameSchedule).
void agreeOnSchedule(bootstrap::Store& store, const std::string& key, int rank, int size,
                     const Settings& settings, const LinkSetup& links,
                     std::chrono::milliseconds timeout);

// The fabric over `store` with `options`, every link of `rank` in `topology` over `backends`
// (planLinks), and the Context over them.
std::unique_ptr<Context> connectContext(int rank, topo::Topology topology, bootstrap::Store& store,
                                        transport::FabricOptions options,
                                        const BackendChoice& backends, const Settings& settings);

}  // namespace xsite::coll
