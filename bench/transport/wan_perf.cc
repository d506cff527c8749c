// xsite_wan_perf: point-to-point goodput between two sites over one xsite connection, like
// ucx_perftest at the transport level. Run with two ranks in different sites:
//   xsite-run --sites 2 --domains 1 --ranks-per-domain 1 -- xsite_wan_perf -b 64K -e 1G
// or, for the site transport, two domains of one site with -t ucx (bench/ucx_compare.sh):
//   xsite-run --sites 1 --domains 2 --ranks-per-domain 1 -- xsite_wan_perf -t ucx -b 4M -e 4M
// Rank 0 sends `iters` messages of each size back to back; rank 1 answers with one byte when it
// has them all; the time is rank 0's, from the first send to that answer.
#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bootstrap/rendezvous.h"
#include "transport/fabric.h"
#include "util/params.h"

namespace {

using namespace xsite;
using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const char* error) {
  if (error) fprintf(stderr, "xsite_wan_perf: %s\n", error);
  fprintf(stderr,
          "usage: xsite_wan_perf [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS] [-w WARMUP]\n"
          "                      [-s STREAMS] [-W WINDOW] [-F FRAME] [-t streams|tcp|ucx] [-r MBIT] [-T]\n"
          "  -b/-e  sizes (K/M/G), default 64K..1G    -f  step factor, default 4\n"
          "  -n     messages per size (at least 64M of data), default 4   -w warm-up messages, 1\n"
          "  -s     WAN streams (XSITE_WAN_STREAMS)    -W  staging window (XSITE_WAN_WINDOW)\n"
          "  -F     frame size (XSITE_WAN_FRAME_SIZE)  -t  transport: streams, tcp (one socket) or ucx\n"
          "  -r     the link's rate in Mbit/s for the '%% of link' column (XSITE_WAN_RATE_MBIT)\n"
          "  -T     TLS 1.3 on the WAN streams (XSITE_WAN_TLS=1; needs the job's secret)\n"
          "Two ranks, one per site (e.g. under xsite-run --sites 2 --domains 1 --ranks-per-domain 1).\n");
  exit(error ? 2 : 0);
}

size_t bytesArg(const char* s) {
  auto v = params::parseSize(s);
  if (!v || *v <= 0) usage((std::string("bad size '") + s + "'").c_str());
  return static_cast<size_t>(*v);
}

// Drives the connection until `done()`; throws on a transport error.
template <typename F>
void drive(transport::Connection& c, F done) {
  while (!done()) {
    bool moved = false;
    throwIfError(c.progress(moved));
    if (!moved) sched_yield();
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto& p = params::Params::global();
    size_t minBytes = 64 << 10, maxBytes = size_t{1} << 30;
    double factor = 4, rate = p.real(params::Id::kWanRateMbit);
    int iters = 4, warmup = 1;
    transport::WanLinkOptions wan;
    wan.streams = static_cast<int>(p.integer(params::Id::kWanStreams));
    wan.frameBytes = static_cast<size_t>(p.integer(params::Id::kWanFrameSize));
    wan.windowBytes = static_cast<size_t>(p.integer(params::Id::kWanWindow));
    wan.congestion = p.string(params::Id::kWanCongestion);
    wan.latencyUs = p.real(params::Id::kWanLatencyUs);
    wan.rateMbit = rate;
    wan.tls = p.integer(params::Id::kWanTls) != 0;
    std::string kind = p.string(params::Id::kWanTransport);
    int ch;
    while ((ch = getopt(argc, argv, "b:e:f:n:w:s:W:F:t:r:Th")) != -1) {
      switch (ch) {
        case 'b': minBytes = bytesArg(optarg); break;
        case 'e': maxBytes = bytesArg(optarg); break;
        case 'f': factor = atof(optarg); if (factor <= 1) usage("-f must be > 1"); break;
        case 'n': iters = std::max(1, atoi(optarg)); break;
        case 'w': warmup = std::max(0, atoi(optarg)); break;
        case 's': wan.streams = atoi(optarg); if (wan.streams < 1 || wan.streams > 64) usage("-s takes 1..64"); break;
        case 'W': wan.windowBytes = bytesArg(optarg); break;
        case 'F': wan.frameBytes = bytesArg(optarg); break;
        case 't':
          kind = optarg;
          if (kind != "streams" && kind != "tcp" && kind != "ucx") usage("-t takes streams, tcp or ucx");
          break;
        case 'r': rate = atof(optarg); break;
        case 'T': wan.tls = true; break;
        case 'h': usage(nullptr);
        default: usage("unknown flag");
      }
    }
    if (maxBytes < minBytes) usage("-e must be >= -b");
    const int rank = static_cast<int>(p.integer(params::Id::kRank));
    const int world = static_cast<int>(p.integer(params::Id::kWorldSize));
    if (world != 2 || rank < 0) usage("needs exactly two ranks (XSITE_RANK / XSITE_WORLD_SIZE)");
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(p.real(params::Id::kBootstrapTimeout) * 1000));

    bootstrap::Rendezvous rv(p, rank, world, timeout);
    transport::FabricOptions fo;
    fo.prefix = "wan-perf";
    fo.listenIp = rv.listenIp();
    fo.job = rv.job();
    fo.secret = rv.secret();
    fo.timeout = timeout;
    fo.wan = wan;
    transport::Fabric fabric(rank, world, rv.store(), fo);
    const auto backend = kind == "streams" ? transport::Backend::kWan
                         : kind == "ucx"     ? transport::Backend::kUcx
                                             : transport::Backend::kTcp;
    fabric.establish({{1 - rank, 0, backend, "wan-perf"}});
    rv.leave();
    transport::Connection& c = fabric.connection(1 - rank, 0);

    if (rank == 0)
      printf("# xsite_wan_perf: %s%s, %d stream%s, frame %zu B, window %s, link %.0f Mbit/s\n"
             "# %12s %10s %12s %12s %10s\n",
             kind.c_str(), kind == "streams" && wan.tls ? " (TLS)" : "",
             kind != "streams" ? 1 : wan.streams, (kind != "streams" || wan.streams == 1) ? "" : "s",
             wan.frameBytes, wan.windowBytes ? std::to_string(wan.windowBytes).c_str() : "auto (2 BDP)",
             rate, "size (B)", "messages", "time (ms)", "goodput Mb/s", "% of link");
    std::vector<char> buf(maxBytes, static_cast<char>(rank + 1));
    char ack = 0;
    for (size_t size = minBytes; size <= maxBytes;
         size = std::max(size + 1, static_cast<size_t>(size * factor))) {
      // Enough messages to move at least 64 MiB, so small sizes are not all latency.
      const int n = std::max<int>(iters, static_cast<int>((64u << 20) / size));
      for (int round = 0; round < 2; ++round) {
        const int count = round == 0 ? warmup : n;
        if (count == 0) continue;
        auto t0 = Clock::now();
        if (rank == 0) {
          uint64_t last = 0;
          for (int i = 0; i < count; ++i) last = c.postSend(buf.data(), size);
          uint64_t ackTicket = c.postRecv(&ack, 1);
          drive(c, [&] { return c.sendsDone() >= last && c.recvsDone() >= ackTicket; });
        } else {
          uint64_t last = 0;
          for (int i = 0; i < count; ++i) last = c.postRecv(buf.data(), size);
          drive(c, [&] { return c.recvsDone() >= last; });
          uint64_t t = c.postSend(&ack, 1);
          drive(c, [&] { return c.sendsDone() >= t; });
        }
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (round == 1 && rank == 0) {
          double mbps = static_cast<double>(size) * n * 8 / (ms * 1000);
          printf("  %12zu %10d %12.1f %12.1f %9.1f%%\n", size, n, ms, mbps, 100.0 * mbps / rate);
          fflush(stdout);
        }
      }
      if (size == maxBytes) break;
    }
    return 0;
  } catch (const Error& e) {
    fprintf(stderr, "xsite_wan_perf: %s\n", e.what());
    return 1;
  }
}
