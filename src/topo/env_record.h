// What this rank says about itself, from the params registry (XSITE_* variables first, then
// torchrun's, Open MPI's and Slurm's) and the host name.
#pragma once

#include <string>

#include "topo/topology.h"
#include "util/params.h"

namespace xsite::topo {

// Throws Error(kInvalidUsage) when two sources disagree (e.g. XSITE_RANK=3 but RANK=5).
RankRecord recordFromParams(const params::Params& p, const std::string& hostname);

}  // namespace xsite::topo
