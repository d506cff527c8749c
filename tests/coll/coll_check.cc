// coll_check: one rank of a multi-process collective test, started by xsite-run (see
// tests/coll/CMakeLists.txt). Runs every collective x algorithm x data type x op x size over
// Communicator::fromEnvironment() and checks every element against the reference and that all
// ranks hold bit-identical bytes.
//   coll_check            the matrix; exit 0 when everything matched
//   coll_check die R      rank R exits abruptly before an all-reduce; every other rank must fail
//                         with an error naming rank R, within the timeout (exit 0 when it does)
//   coll_check stop R     rank R stops itself (SIGSTOP) before an all-reduce, and a child of it
//                         kills it 3 heartbeat periods + 10 s later; every other rank must fail
//                         within 3 periods + 1 s, naming rank R (exit 0 when it does)
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "coll/matrix.h"
#include "xsite/xsite.h"

using namespace xsite;
using namespace xsite::testing;

namespace {

int failures = 0;

void report(bool ok, const std::string& what, int rank) {
  if (!ok) {
    ++failures;
    if (failures < 20) fprintf(stderr, "rank %d: FAILED %s\n", rank, what.c_str());
  }
}

// FNV-1a of the bytes: every rank must hold the same hash.
uint64_t hashOf(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
  return h;
}

void checkIdentical(Communicator& comm, const void* p, size_t n, const std::string& what) {
  uint64_t h = hashOf(p, n), lo = 0, hi = 0;
  comm.allReduce(&h, &lo, 1, DataType::kUint64, ReduceOp::kMin, {Algorithm::kLatency});
  comm.allReduce(&h, &hi, 1, DataType::kUint64, ReduceOp::kMax, {Algorithm::kLatency});
  report(lo == hi, what + ": ranks hold different bytes", comm.rank());
}

void matrix(Communicator& comm) {
  Reporter rep{[&](bool ok, const std::string& what) { report(ok, what, comm.rank()); },
               [&](const void* p, size_t n, const std::string& what) { checkIdentical(comm, p, n, what); }};
  allReduceMatrix(comm, rep);
  reduceScatterMatrix(comm, rep);
  allGatherMatrix(comm, rep);
  broadcastMatrix(comm, rep);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const bool failing = argc == 3 && (!strcmp(argv[1], "die") || !strcmp(argv[1], "stop"));
    Config config = smallPipelineConfig();
    if (failing) config.heartbeatSeconds = 1;
    Communicator comm = Communicator::fromEnvironment(config);
    if (failing) {
      const bool stop = !strcmp(argv[1], "stop");
      const int victim = atoi(argv[2]);
      const double period = *config.heartbeatSeconds;
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      if (comm.rank() == victim) {
        if (!stop) _exit(3);  // no goodbye: sockets and rings just vanish
        const pid_t self = getpid();
        if (fork() == 0) {  // the stopped rank's undertaker
          usleep(static_cast<useconds_t>((3 * period + 10) * 1e6));
          kill(self, SIGKILL);
          _exit(0);
        }
        raise(SIGSTOP);
        _exit(4);  // not reached: killed while stopped
      }
      std::vector<float> x(100000, 1.0f);
      try {
        for (int i = 0; i < 100000; ++i)
          comm.allReduce(x.data(), x.data(), x.size(), DataType::kFloat32, ReduceOp::kSum);
      } catch (const Error& e) {
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const std::string named = "rank " + std::to_string(victim) + " (";
        const bool names = std::string(e.what()).find(named) != std::string::npos;
        const bool soon = !stop || took < 3 * period + 1;
        fprintf(stderr, "rank %d: %s error after %.2f s: %s\n", comm.rank(),
                names && soon ? "expected" : "FAILED: unexpected", took, e.what());
        return names && soon ? 0 : 1;
      }
      fprintf(stderr, "rank %d: FAILED: no error although rank %d %s\n", comm.rank(), victim,
              stop ? "stopped" : "died");
      return 1;
    }
    matrix(comm);
    if (comm.rank() == 0)
      printf("coll_check: %s: %s\n", comm.describeTopology().c_str(), failures ? "FAILED" : "all matched");
    return failures ? 1 : 0;
  } catch (const Error& e) {
    fprintf(stderr, "coll_check: %s\n", e.what());
    return 1;
  }
}
