// xsite-tuner-dump: the tuner's decision table for a topology, as NCCL would see it.
//
//   xsite-tuner-dump (--topo FILE | --sites S --domains D --ranks-per-domain R)
//                    [--wan-latency-us US] [--wan-rate-mbit MBIT] [--nranks N] [--nnodes N]
//                    [--collnet] [--min 8] [--max 1G]
//
// For each collective and size (x4 steps from --min, then --max) it offers the tuner the cost table
// NCCL 2.28 would offer a host-memory net (Broadcast/Reduce: RING; AllGather/ReduceScatter: RING,
// PAT; AllReduce: TREE, RING, and COLLNET_DIRECT/CHAIN with --collnet) and prints what the tuner
// picks: algorithm, protocol, the channel count it writes ("nccl": NCCL's own) and the cost
// model's estimate, or "nccl" where it leaves NCCL's costs alone. The links come from
// XSITE_*_LATENCY_US/_RATE_MBIT as in the library; --wan-* override the WAN's. NCCL's per-step
// latencies are its 2.28 defaults for a NET hop (a live v5 init hands over the real ones).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "plugin/tuner/tuner.h"
#include "util/params.h"
#include "xsite/error.h"

using namespace xsite;
using namespace xsite::plugin::tuner;

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: xsite-tuner-dump (--topo FILE | --sites S --domains D --ranks-per-domain R)\n"
      "         [--wan-latency-us US] [--wan-rate-mbit MBIT] [--nranks N] [--nnodes N]\n"
      "         [--collnet] [--min SIZE] [--max SIZE]\n"
      "  FILE: one 'rank=R site=S domain=D' line per rank (the XSITE_TOPO_FILE format)\n"
      "  --domains: domains (nodes) per site; --nranks/--nnodes: NCCL's view of the\n"
      "  communicator (default: the topology's ranks and domains)\n");
}

std::string human(size_t b) {
  const char* units[] = {"B", "K", "M", "G"};
  int u = 0;
  while (b >= 1024 && b % 1024 == 0 && u < 3) {
    b /= 1024;
    ++u;
  }
  return std::to_string(b) + units[u];
}

long positive(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n <= 0) {
    std::fprintf(stderr, "xsite-tuner-dump: %s needs a positive integer, got '%s'\n", flag.c_str(),
                 v.c_str());
    std::exit(2);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string topoFile, wanLatency, wanRate;
  long sites = 0, domains = 0, ranksPerDomain = 0, nRanks = 0, nNodes = 0;
  bool collnet = false;
  size_t minBytes = 8, maxBytes = size_t{1} << 30;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--topo") {
      topoFile = next();
    } else if (a == "--sites") {
      sites = positive(a, next());
    } else if (a == "--domains") {
      domains = positive(a, next());
    } else if (a == "--ranks-per-domain") {
      ranksPerDomain = positive(a, next());
    } else if (a == "--wan-latency-us") {
      wanLatency = next();
    } else if (a == "--wan-rate-mbit") {
      wanRate = next();
    } else if (a == "--nranks") {
      nRanks = positive(a, next());
    } else if (a == "--nnodes" || a == "--nodes") {
      nNodes = positive(a, next());
    } else if (a == "--collnet") {
      collnet = true;
    } else if (a == "--min" || a == "--max") {
      auto v = params::parseSize(next());
      if (!v || *v <= 0) {
        std::fprintf(stderr, "xsite-tuner-dump: %s needs a size like 8, 4K, 1M, 1G\n", a.c_str());
        return 2;
      }
      (a == "--min" ? minBytes : maxBytes) = static_cast<size_t>(*v);
    } else {
      usage();
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  const bool shape = sites > 0 || domains > 0 || ranksPerDomain > 0;
  if (topoFile.empty() == !shape ||
      (shape && (sites <= 0 || domains <= 0 || ranksPerDomain <= 0))) {
    std::fprintf(stderr,
                 "xsite-tuner-dump: give either --topo FILE or all of --sites, --domains "
                 "and --ranks-per-domain\n");
    usage();
    return 2;
  }
  try {
    auto env = params::Params::environmentLookup();
    params::Params p([&](const char* name) -> std::optional<std::string> {
      if (std::strcmp(name, "XSITE_TOPO_FILE") == 0 && !topoFile.empty()) return topoFile;
      if (std::strcmp(name, "XSITE_WAN_LATENCY_US") == 0 && !wanLatency.empty()) return wanLatency;
      if (std::strcmp(name, "XSITE_WAN_RATE_MBIT") == 0 && !wanRate.empty()) return wanRate;
      return env(name);
    });
    std::string why;
    std::optional<topo::Topology> topology;
    if (shape) {
      topology = topo::Topology::regular(static_cast<int>(sites), static_cast<int>(domains),
                                         static_cast<int>(ranksPerDomain));
      if (topology->numSites() < 2) why = "the communicator lies in one site";
    } else {
      topology = multiSiteTopology(p, 0, &why);
    }
    if (topology && nRanks > 0 && static_cast<long>(topology->size()) != nRanks) {
      why = "the topology has " + std::to_string(topology->size()) + " ranks but --nranks says " +
            std::to_string(nRanks);
      topology.reset();
    }
    if (!topology || topology->numSites() < 2) {
      std::printf("# the tuner declines (%s); NCCL's costs are left alone for every size\n",
                  why.c_str());
      return 0;
    }
    const size_t nodes =
        nNodes > 0 ? static_cast<size_t>(nNodes) : static_cast<size_t>(topology->numDomains());
    const topo::CostModel model = topo::costModelFromParams(p);
    Tuner tuner(*topology, model, nodes, nullptr);
    std::printf("# topology: %s; NCCL: %d ranks, %zu nodes; CollNet %s\n",
                topology->describe().c_str(), topology->size(), nodes,
                collnet ? "offered" : "not offered");
    std::printf(
        "# WAN: %.0f us one way, %.0f Mbit/s; BDP %.1f MiB; channel window %.0f MiB "
        "(SIMPLE), at most %d channels\n",
        model.wan.latencyUs, model.wan.bytesPerUs * 8,
        model.bdpBytes(*topology) / (1024.0 * 1024.0),
        channelWindowBytes(NCCL_PROTO_SIMPLE) / (1024.0 * 1024.0), kMaxChannels);
    std::printf("# %-13s %8s  %-14s %-7s %-8s %12s\n", "collective", "bytes", "algorithm", "proto",
                "channels", "model us");
    for (int coll = 0; coll < NCCL_NUM_FUNCTIONS; ++coll) {
      // x4 steps from --min, and --max itself as the last row (8 B x 4^k never lands on 1 GiB).
      for (size_t b = minBytes; b <= maxBytes;
           b = (b < maxBytes && b * 4 > maxBytes) ? maxBytes : b * 4) {
        float table[NCCL_NUM_ALGORITHMS * NCCL_NUM_PROTOCOLS];
        for (float& e : table) e = NCCL_ALGO_PROTO_IGNORE;
        auto offer = [&](int algo, bool simpleOnly) {
          for (int pr = 0; pr < NCCL_NUM_PROTOCOLS; ++pr)
            if (!simpleOnly || pr == NCCL_PROTO_SIMPLE)
              table[algo * NCCL_NUM_PROTOCOLS + pr] = 1.0f;
        };
        offer(NCCL_ALGO_RING, false);
        if (coll == ncclFuncAllGather || coll == ncclFuncReduceScatter) offer(NCCL_ALGO_PAT, true);
        if (coll == ncclFuncAllReduce) {
          offer(NCCL_ALGO_TREE, false);
          if (collnet) {
            offer(NCCL_ALGO_COLLNET_DIRECT, true);
            offer(NCCL_ALGO_COLLNET_CHAIN, true);
          }
        }
        int channels = 0;
        Decision d =
            tuner.apply(coll, b, table, NCCL_NUM_ALGORITHMS, NCCL_NUM_PROTOCOLS, &channels);
        if (d.modelled) {
          std::printf("  %-13s %8s  %-14s %-7s %-8s %12.1f\n", collName(coll), human(b).c_str(),
                      algoName(d.algo), protoName(d.proto),
                      channels > 0 ? std::to_string(channels).c_str() : "nccl", d.estimateUs);
        } else {  // the same for every size: one line
          std::printf("  %-13s %8s  %-14s %-7s %-8s %12s  # %s\n", collName(coll), "any", "nccl",
                      "nccl", "nccl", "-", d.reason);
          break;
        }
        if (b == maxBytes) break;
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "xsite-tuner-dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
