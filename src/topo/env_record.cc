#include "topo/env_record.h"

#include <cstdlib>
#include <optional>
#include <vector>

#include "xsite/error.h"

namespace xsite::topo {
namespace {

using params::Id;

struct Source {
  Id id;
  const char* launcher;
};

// The first set variable wins; any other set variable must agree with it.
std::optional<int> pick(const params::Params& p, std::initializer_list<Source> sources,
                        std::string* from) {
  std::optional<int> value;
  std::string first;
  for (const auto& s : sources) {
    if (!p.isSet(s.id)) continue;
    const std::string& text = p.string(s.id);
    char* end = nullptr;
    long v = std::strtol(text.c_str(), &end, 10);
    const char* name = params::info(s.id).name;
    if (text.empty() || *end != '\0' || v < 0 || v > (1 << 30))
      throw Error(ErrorCategory::kInvalidUsage,
                  std::string(name) + "='" + text + "' is not an integer in 0.." +
                      std::to_string(1 << 30));
    if (!value) {
      value = static_cast<int>(v);
      first = std::string(name) + "=" + text;
      if (from) *from = s.launcher;
    } else if (*value != v) {
      throw Error(ErrorCategory::kInvalidUsage, "launcher variables disagree: " + first +
                                                    " but " + name + "=" + text);
    }
  }
  return value;
}

}  // namespace

RankRecord recordFromParams(const params::Params& p, const std::string& hostname) {
  RankRecord r;
  std::string source;
  auto rank = pick(p,
                   {{Id::kRank, "XSITE_*"},
                    {Id::kTorchRank, "torchrun"},
                    {Id::kOmpiRank, "Open MPI"},
                    {Id::kSlurmProcId, "Slurm"}},
                   &source);
  auto world = pick(p,
                    {{Id::kWorldSize, "XSITE_*"},
                     {Id::kTorchWorldSize, "torchrun"},
                     {Id::kOmpiSize, "Open MPI"},
                     {Id::kSlurmNtasks, "Slurm"}},
                    nullptr);
  if (rank.has_value() != world.has_value())
    throw Error(ErrorCategory::kInvalidUsage,
                rank ? "the rank is set (" + source + ") but no world size (XSITE_WORLD_SIZE, "
                       "WORLD_SIZE, OMPI_COMM_WORLD_SIZE or SLURM_NTASKS)"
                     : "the world size is set but no rank (XSITE_RANK, RANK, "
                       "OMPI_COMM_WORLD_RANK or SLURM_PROCID)");
  r.rank = rank.value_or(0);
  r.worldSize = world.value_or(1);
  if (r.rank >= r.worldSize)
    throw Error(ErrorCategory::kInvalidUsage, "rank " + std::to_string(r.rank) +
                                                  " is not below the world size " +
                                                  std::to_string(r.worldSize));
  r.source = rank ? source : "single process";
  if (p.isSet(Id::kSite)) r.site = static_cast<int>(p.integer(Id::kSite));
  if (r.site < 0) throw Error(ErrorCategory::kInvalidUsage, "XSITE_SITE must be >= 0");

  if (p.isSet(Id::kDomain)) {
    r.domain = p.string(Id::kDomain);
  } else if (auto g = pick(p, {{Id::kTorchGroupRank, "torchrun"}, {Id::kSlurmNodeId, "Slurm"}},
                           nullptr)) {
    r.domain = "node" + std::to_string(*g);
  } else {
    r.domain = hostname;
  }
  r.localRank = pick(p,
                     {{Id::kLocalRank, "XSITE_*"},
                      {Id::kTorchLocalRank, "torchrun"},
                      {Id::kOmpiLocalRank, "Open MPI"},
                      {Id::kSlurmLocalId, "Slurm"}},
                     nullptr)
                    .value_or(-1);
  r.localSize = pick(p,
                     {{Id::kLocalSize, "XSITE_*"},
                      {Id::kTorchLocalWorldSize, "torchrun"},
                      {Id::kOmpiLocalSize, "Open MPI"}},
                     nullptr)
                    .value_or(-1);
  return r;
}

}  // namespace xsite::topo
