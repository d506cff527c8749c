// xsite-tuner-dump: the tuner's decision table for a topology, as NCCL would see it.
//
//   xsite-tuner-dump --topo FILE [--collnet] [--min 1K] [--max 1G] [--nodes N]
//
// For each collective and size (powers of 4 from --min to --max) it offers the tuner the cost
// table NCCL 2.28 would offer a host-memory net (Broadcast/Reduce: RING; AllGather/
// ReduceScatter: RING, PAT; AllReduce: TREE, RING, and COLLNET_* with --collnet) and prints
// what the tuner picks: algorithm, protocol, channels ("nccl": NCCL's own), or "nccl" where it
// leaves NCCL's costs alone. The cost model's links come from XSITE_*_LATENCY_US/_RATE_MBIT, as
// in the library. Without NCCL's constants (which only a live v5 init hands over), protocol
// latencies are 0, as for the v3/v4 tables.
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
      "usage: xsite-tuner-dump --topo FILE [--collnet] [--min SIZE] [--max SIZE] [--nodes N]\n"
      "  FILE: one 'rank=R site=S domain=D' line per rank (the XSITE_TOPO_FILE format)\n");
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

}  // namespace

int main(int argc, char** argv) {
  std::string topoFile;
  bool collnet = false;
  size_t minBytes = 1024, maxBytes = size_t{1} << 30;
  long nodes = -1;
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
    } else if (a == "--collnet") {
      collnet = true;
    } else if (a == "--min" || a == "--max") {
      auto v = params::parseSize(next());
      if (!v || *v <= 0) {
        std::fprintf(stderr, "xsite-tuner-dump: %s needs a size like 4K, 1M, 1G\n", a.c_str());
        return 2;
      }
      (a == "--min" ? minBytes : maxBytes) = static_cast<size_t>(*v);
    } else if (a == "--nodes") {
      nodes = std::stol(next());
    } else {
      usage();
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  if (topoFile.empty()) {
    usage();
    return 2;
  }
  try {
    auto env = params::Params::environmentLookup();
    params::Params p([&](const char* name) -> std::optional<std::string> {
      if (std::strcmp(name, "XSITE_TOPO_FILE") == 0) return topoFile;
      return env(name);
    });
    std::string why;
    auto topology = multiSiteTopology(p, 0, &why);
    if (!topology) {
      std::printf("# %s: the tuner declines (%s); NCCL's costs are left alone for every size\n",
                  topoFile.c_str(), why.c_str());
      return 0;
    }
    const size_t nNodes =
        nodes > 0 ? static_cast<size_t>(nodes) : static_cast<size_t>(topology->numDomains());
    Tuner tuner(*topology, costModelFromParams(p), nNodes, nullptr);
    std::printf("# topology: %s; %zu nodes; CollNet %s\n", topology->describe().c_str(), nNodes,
                collnet ? "offered" : "not offered");
    std::printf("# %-13s %8s  %-14s %-7s %-8s %12s\n", "collective", "bytes", "algorithm", "proto",
                "channels", "model us");
    for (int coll = 0; coll < NCCL_NUM_FUNCTIONS; ++coll) {
      for (size_t b = minBytes; b <= maxBytes; b *= 4) {
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
        if (d.modelled)
          std::printf("  %-13s %8s  %-14s %-7s %-8s %12.1f\n", collName(coll), human(b).c_str(),
                      algoName(d.algo), protoName(d.proto),
                      channels > 0 ? std::to_string(channels).c_str() : "nccl", d.estimateUs);
        else {  // the same for every size: one line
          std::printf("  %-13s %8s  %-14s %-7s %-8s %12s  # %s\n", collName(coll), "any", "nccl",
                      "nccl", "nccl", "-", d.reason);
          break;
        }
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "xsite-tuner-dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
