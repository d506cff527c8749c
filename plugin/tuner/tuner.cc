#include "plugin/tuner/tuner.h"

#include <algorithm>
#include <cmath>

#include "util/log.h"
#include "util/params.h"
#include "xsite/error.h"
#include "xsite/types.h"

namespace xsite::plugin::tuner {
namespace {

// Bytes a protocol moves per byte of payload: LL sends a flag with every 4 data bytes, LL128
// 8 flag bytes in every 128.
double protoEfficiency(int proto) {
  switch (proto) {
    case NCCL_PROTO_LL:
      return 0.5;
    case NCCL_PROTO_LL128:
      return 120.0 / 128.0;
    default:
      return 1.0;
  }
}

// Which xsite schedule an NCCL algorithm is costed as; nullopt: not modelled (NVLS, PAT).
std::optional<Algorithm> xsiteSchedule(int algo) {
  switch (algo) {
    case NCCL_ALGO_RING:
      return Algorithm::kRing;
    case NCCL_ALGO_TREE:
      return Algorithm::kLatency;
    case NCCL_ALGO_COLLNET_DIRECT:
    case NCCL_ALGO_COLLNET_CHAIN:
      return Algorithm::kHierarchical;
    default:
      return std::nullopt;
  }
}

// NCCL 2.28's defaults (src/graph/tuning.cc) for a step over the network: baseLat + hwLat[NET],
// microseconds, [algorithm][protocol]; 0 where the pair does not exist.
constexpr double kNcclNetLatencyUs[NCCL_NUM_ALGORITHMS][NCCL_NUM_PROTOCOLS] = {
    {6.8 + 5.0, 14.0 + 8.5, 8.4 + 14.0},  // TREE
    {6.6 + 2.7, 14.0 + 4.0, 8.4 + 14.0},  // RING
    {0, 0, 31},                           // COLLNET_DIRECT
    {0, 0, 30},                           // COLLNET_CHAIN
    {0, 0, 18},                           // NVLS
    {0, 0, 14},                           // NVLS_TREE
    {0, 0, 0},                            // PAT
};

}  // namespace

double channelWindowBytes(int proto) {
  switch (proto) {
    case NCCL_PROTO_LL:
      return 256.0 * 1024;
    default:  // SIMPLE: 8 x 512 KiB; LL128's buffer carries about the same payload
      return 4.0 * 1024 * 1024;
  }
}

Tuner::Tuner(topo::Topology topology, topo::CostModel model, size_t nNodes,
             const ncclTunerConstants_v5_t* constants)
    : topology_(std::move(topology)), model_(model), nNodes_(std::max<size_t>(nNodes, 1)) {
  for (int a = 0; a < NCCL_NUM_ALGORITHMS; ++a)
    for (int p = 0; p < NCCL_NUM_PROTOCOLS; ++p)
      latencyUs_[a][p] = constants == nullptr ? kNcclNetLatencyUs[a][p]
                                              : constants->baseLatencies[a][p] +
                                                    constants->hwLatencies[NCCL_HW_NET][a][p];
}

int Tuner::steps(int algo) const {
  const int n = topology_.size();
  switch (algo) {
    case NCCL_ALGO_RING:
      return 2 * std::max(n - 1, 1);
    case NCCL_ALGO_TREE:
      return 2 * std::max(1, static_cast<int>(std::ceil(std::log2(static_cast<double>(nNodes_)))));
    default:
      return 2;
  }
}

double Tuner::protoLatencyUs(int algo, int proto) const {
  return std::max(0.0, latencyUs_[algo][proto]) * steps(algo);
}

Decision Tuner::decide(int collType, size_t nBytes, const float* table, int numAlgo,
                       int numProto) const {
  Decision d;
  if (collType != ncclFuncAllReduce) {
    d.reason = "not modelled (all-reduce only)";
    return d;
  }
  if (numProto != NCCL_NUM_PROTOCOLS || numAlgo > NCCL_NUM_ALGORITHMS || numAlgo < 1) {
    d.reason = "unexpected table shape";
    return d;
  }
  double best = 0;
  // SIMPLE first: on a tie the protocol without overhead wins.
  constexpr int kProtoOrder[] = {NCCL_PROTO_SIMPLE, NCCL_PROTO_LL128, NCCL_PROTO_LL};
  for (int a = 0; a < numAlgo; ++a) {
    auto schedule = xsiteSchedule(a);
    if (!schedule) continue;
    for (int p : kProtoOrder) {
      if (table[a * numProto + p] < 0) continue;  // NCCL_ALGO_PROTO_IGNORE: not set up
      const double bytes = static_cast<double>(nBytes) / protoEfficiency(p);
      const double us = model_.estimateUs(*schedule, static_cast<size_t>(bytes), topology_) +
                        protoLatencyUs(a, p);
      if (!d.modelled || us < best) {
        d.modelled = true;
        d.algo = a;
        d.proto = p;
        best = us;
      }
    }
  }
  d.estimateUs = best;
  if (!d.modelled) {
    d.reason = "no modelled algorithm available";
    return d;
  }
  d.channels = model_.pipelines(nBytes, topology_, channelWindowBytes(d.proto), kMaxChannels);
  return d;
}

Decision Tuner::apply(int collType, size_t nBytes, float* table, int numAlgo, int numProto,
                      int* nChannels) const {
  Decision d = decide(collType, nBytes, table, numAlgo, numProto);
  if (!d.modelled) return d;
  float& entry = table[d.algo * numProto + d.proto];
  if (entry >= 0) entry = 0.0f;  // decide() only picks available entries; checked again
  if (nChannels != nullptr && d.channels > 0) *nChannels = std::min(d.channels, kMaxChannels);
  return d;
}

std::optional<topo::Topology> multiSiteTopology(const params::Params& p, size_t nRanks,
                                                std::string* why) {
  if (!p.isSet(params::Id::kTopoFile)) {
    *why = "XSITE_TOPO_FILE is not set, so the sites of this communicator's ranks are unknown";
    return std::nullopt;
  }
  const std::string& path = p.string(params::Id::kTopoFile);
  auto records = topo::readTopologyFile(path);
  if (nRanks != 0 && records.size() != nRanks) {
    *why = "XSITE_TOPO_FILE " + path + " lists " + std::to_string(records.size()) +
           " ranks but the communicator has " + std::to_string(nRanks);
    return std::nullopt;
  }
  topo::Topology t = topo::Topology::fromRecords(records);
  if (t.numSites() < 2) {
    *why = "the communicator lies in one site";
    return std::nullopt;
  }
  return t;
}

std::unique_ptr<Tuner> create(size_t nRanks, size_t nNodes,
                              const ncclTunerConstants_v5_t* constants) {
  const params::Params& p = params::Params::global();
  std::string why;
  auto t = multiSiteTopology(p, nRanks, &why);
  if (!t) {
    XSITE_INFO(kColl, "tuner: NCCL's costs left alone: %s", why.c_str());
    return nullptr;
  }
  XSITE_INFO(kColl, "tuner: steering all-reduce for %s (%zu nodes)", t->describe().c_str(), nNodes);
  return std::make_unique<Tuner>(std::move(*t), topo::costModelFromParams(p), nNodes, constants);
}

const char* algoName(int algo) noexcept {
  constexpr const char* kNames[] = {"TREE",      "RING", "COLLNET_DIRECT", "COLLNET_CHAIN", "NVLS",
                                    "NVLS_TREE", "PAT"};
  return algo >= 0 && algo < NCCL_NUM_ALGORITHMS ? kNames[algo] : "-";
}

const char* protoName(int proto) noexcept {
  constexpr const char* kNames[] = {"LL", "LL128", "SIMPLE"};
  return proto >= 0 && proto < NCCL_NUM_PROTOCOLS ? kNames[proto] : "-";
}

const char* collName(int coll) noexcept {
  constexpr const char* kNames[] = {"Broadcast", "Reduce", "AllGather", "ReduceScatter",
                                    "AllReduce"};
  return coll >= 0 && coll < NCCL_NUM_FUNCTIONS ? kNames[coll] : "?";
}

}  // namespace xsite::plugin::tuner
