// The tuner: steers NCCL's algorithm and protocol choice for multi-site communicators with
// xsite's cost model (topo/cost_model.h), and leaves NCCL's costs alone everywhere else.
//
// What it models: all-reduce. NCCL's RING is costed as xsite's flat ring, TREE as xsite's
// latency schedule (reduce to leaders, one cross-site exchange), COLLNET_DIRECT/CHAIN as the
// hierarchical schedule; a protocol moves bytes at its efficiency (LL 1/2, LL128 120/128,
// SIMPLE 1) and adds NCCL's per-step latency for that (algorithm, protocol): the constants NCCL
// hands to a v5 init, or NCCL 2.28's own defaults for a NET hop (kNcclNetLatencyUs) where none
// come (v3/v4, xsite-tuner-dump). The cheapest entry that NCCL offers (not -1) is set to 0.0,
// which NCCL then picks; no other entry is written, an entry of -1 never.
//
// The channel count: for a modelled all-reduce the tuner writes nChannels (NCCL overrides its own
// count with any non-zero value, NCCL_ABI.md §4.3) from the cost model's CostModel::pipelines:
// enough channels to keep the WAN's bandwidth-delay product in flight when each channel holds
// NCCL's buffer for the chosen protocol per round trip (kChannelWindowBytes: SIMPLE 8 x 512 KiB),
// but no more than the message fills (a message within one window: 1), within [1, kMaxChannels].
// NCCL clamps the count to the channels the communicator set up, so a larger value can never
// select channels that do not exist. Nothing modelled: nChannels is left at NCCL's 0.
// Other collectives, and communicators it cannot place, are left to NCCL entirely.
//
// How it knows the sites: XSITE_TOPO_FILE (one line per rank, the same file xsite's library
// reads), when it lists exactly nRanks ranks in more than one site. Nothing else tells a tuner
// which ranks share a site, so without it the tuner declines.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "plugin/abi/tuner.h"
#include "topo/cost_model.h"
#include "topo/topology.h"

namespace xsite::params {
class Params;
}

namespace xsite::plugin::tuner {

// The most channels the tuner asks for (NCCL's default upper bound on a communicator's channels;
// NCCL clamps to what the communicator has in any case).
constexpr int kMaxChannels = 32;

// Payload bytes one channel keeps in flight per round trip with `proto` (NCCL's default buffer
// sizes: SIMPLE 8 slots x 512 KiB = 4 MiB; LL128 about the same; LL 512 KiB, half of it flags).
double channelWindowBytes(int proto);

struct Decision {
  bool modelled = false;  // false: NCCL's table is left as it was
  int algo = NCCL_ALGO_UNDEF;
  int proto = NCCL_PROTO_UNDEF;
  int channels = 0;  // 0: NCCL's channel count; modelled: 1..kMaxChannels
  double estimateUs = 0;
  const char* reason = "";  // why it is not modelled
};

class Tuner {
 public:
  // `constants` may be null (v3/v4): NCCL 2.28's default per-step latencies of a NET hop are
  // then used.
  Tuner(topo::Topology topology, topo::CostModel model, size_t nNodes,
        const ncclTunerConstants_v5_t* constants);

  const topo::Topology& topology() const { return topology_; }
  // Reads `table` (numAlgo x numProto, flat) and decides; writes nothing.
  Decision decide(int collType, size_t nBytes, const float* table, int numAlgo, int numProto) const;
  // decide() and then set the chosen entry to 0.0 (never an entry that is -1) and, when
  // modelled, *nChannels to the decision's channel count.
  Decision apply(int collType, size_t nBytes, float* table, int numAlgo, int numProto,
                 int* nChannels) const;

 private:
  double protoLatencyUs(int algo, int proto) const;
  int steps(int algo) const;
  topo::Topology topology_;
  topo::CostModel model_;
  size_t nNodes_;
  double latencyUs_[NCCL_NUM_ALGORITHMS][NCCL_NUM_PROTOCOLS] = {};
};

// The communicator's topology when the tuner can place it: XSITE_TOPO_FILE listing nRanks ranks
// in more than one site (nRanks 0: whatever it lists). Otherwise nullopt and `why` says what was
// missing. Throws Error(kInvalidUsage) for a file that cannot be read or parsed.
std::optional<topo::Topology> multiSiteTopology(const params::Params& p, size_t nRanks,
                                                std::string* why);

// init's work: a tuner for this communicator, or null (declined; logged once at INFO).
std::unique_ptr<Tuner> create(size_t nRanks, size_t nNodes,
                              const ncclTunerConstants_v5_t* constants);

const char* algoName(int algo) noexcept;    // "TREE", "RING", ... or "-"
const char* protoName(int proto) noexcept;  // "LL", "LL128", "SIMPLE" or "-"
const char* collName(int coll) noexcept;    // "Broadcast", ... "AllReduce"

}  // namespace xsite::plugin::tuner
