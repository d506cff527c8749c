// xsite_collnet_perf: the all-reduce NCCL would run through xsite's CollNet table, beside the
// library's own hierarchical all-reduce, in one run. One process per rank (xsite-run, torchrun,
// mpirun): the library's Communicator stands in for NCCL's bootstrap (it all-gathers the CollNet
// listen handles), then the plugin is driven as NCCL's proxy drives it (dlopen, the table found
// by name, init, listen, connect, iallreduce + test polled) on host buffers.
//
//   xsite-run -- build/bin/xsite_collnet_perf [-b 64M] [-n 5] [-w 1] [--poll-us 50] [--plugin PATH]
//
// The operation moves inside test() (no thread of the plugin's); between test() calls the
// proxy does its other work, which --poll-us stands for: a sleep of that many microseconds, or
// with 0 a sched_yield() as NCCL's proxy thread does when it is idle.
#include <dlfcn.h>
#include <getopt.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "plugin/abi/net_v11.h"
#include "xsite/xsite.h"

namespace {

using Clock = std::chrono::steady_clock;

void quietLogger(ncclDebugLogLevel, unsigned long, const char*, int, const char*, ...) {}

[[noreturn]] void die(const std::string& what) {
  fprintf(stderr, "xsite_collnet_perf: %s\n", what.c_str());
  exit(1);
}

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) die(std::string(what) + " returned ncclResult_t " + std::to_string(r));
}

size_t parseBytes(const char* s) {
  char* end = nullptr;
  double v = strtod(s, &end);
  size_t mult = 1;
  if (*end == 'K' || *end == 'k') mult = 1u << 10;
  else if (*end == 'M' || *end == 'm') mult = 1u << 20;
  else if (*end == 'G' || *end == 'g') mult = 1u << 30;
  if (end == s || v <= 0) die(std::string("bad size '") + s + "'");
  return static_cast<size_t>(v * static_cast<double>(mult));
}

// The plugin beside this program's build tree: <bin>/../lib/libnccl-net-xsite.so.
std::string defaultPlugin() {
  char exe[4096] = {0};
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string dir = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string(".");
  dir = dir.substr(0, dir.rfind('/'));
  return dir + "/../lib/libnccl-net-xsite.so";
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = 64u << 20;
  int iters = 5, warmup = 1, pollUs = 50;
  std::string plugin = defaultPlugin();
  static const option opts[] = {{"bytes", required_argument, nullptr, 'b'},
                                {"iters", required_argument, nullptr, 'n'},
                                {"warmup_iters", required_argument, nullptr, 'w'},
                                {"plugin", required_argument, nullptr, 'p'},
                                {"poll-us", required_argument, nullptr, 'u'},
                                {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "b:n:w:p:u:h", opts, nullptr)) != -1;) {
    if (c == 'b') bytes = parseBytes(optarg);
    else if (c == 'n') iters = std::max(1, atoi(optarg));
    else if (c == 'w') warmup = std::max(0, atoi(optarg));
    else if (c == 'p') plugin = optarg;
    else if (c == 'u') pollUs = std::max(0, atoi(optarg));
    else die("usage: xsite_collnet_perf [-b BYTES] [-n ITERS] [-w WARMUP] [--poll-us US] [--plugin PATH]");
  }
  try {
    xsite::Communicator comm = xsite::Communicator::fromEnvironment();
    const int rank = comm.rank(), n = comm.size();
    void* lib = dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("cannot load " + plugin + ": " + dlerror());
    auto* cn = static_cast<ncclCollNet_v11_t*>(dlsym(lib, "ncclCollNetPlugin_v11"));
    if (!cn) die(plugin + " has no ncclCollNetPlugin_v11");

    void* ctx = nullptr;
    check(cn->init(&ctx, 0x5853, quietLogger), "init");
    char handle[NCCL_NET_HANDLE_MAXSIZE] = {0};
    void* listenComm = nullptr;
    check(cn->listen(ctx, 0, handle, &listenComm), "listen");
    std::vector<char> all(static_cast<size_t>(n) * sizeof(handle));
    comm.allGather(handle, all.data(), sizeof(handle), xsite::DataType::kUint8);  // NCCL's bootstrap
    std::vector<void*> handles;
    for (int r = 0; r < n; ++r) handles.push_back(all.data() + static_cast<size_t>(r) * sizeof(handle));
    void* coll = nullptr;
    check(cn->connect(handles.data(), n, rank, listenComm, &coll), "connect");
    check(cn->closeListen(listenComm), "closeListen");

    const size_t count = bytes / sizeof(float);
    std::vector<float> in(count), viaLib(count), viaCollNet(count);
    for (size_t i = 0; i < count; ++i) in[i] = static_cast<float>((rank * 31 + i * 17) % 9) - 4.0f;

    auto runLib = [&] {
      comm.allReduce(in.data(), viaLib.data(), count, xsite::DataType::kFloat32, xsite::ReduceOp::kSum,
                     xsite::Algorithm::kHierarchical);
    };
    auto runCollNet = [&] {
      void* req = nullptr;
      while (req == nullptr)
        check(cn->iallreduce(coll, in.data(), viaCollNet.data(), count, ncclFloat32, ncclSum,
                             nullptr, nullptr, &req), "iallreduce");
      for (int done = 0, size = 0; !done;) {
        check(cn->test(req, &done, &size), "test");
        if (done) break;
        if (pollUs > 0) usleep(static_cast<useconds_t>(pollUs));
        else sched_yield();
      }
    };
    // Seconds per call, the slowest rank's.
    auto time = [&](auto&& run) {
      for (int k = 0; k < warmup; ++k) run();
      comm.barrier();
      const auto t0 = Clock::now();
      for (int k = 0; k < iters; ++k) run();
      double s = std::chrono::duration<double>(Clock::now() - t0).count() / iters, worst = 0;
      comm.allReduce(&s, &worst, 1, xsite::DataType::kFloat64, xsite::ReduceOp::kMax);
      return worst;
    };
    const double tLib = time(runLib), tCollNet = time(runCollNet), tLib2 = time(runLib);
    // Integer-valued inputs: both paths must give exactly the same sums.
    long wrong = 0, total = 0;
    for (size_t i = 0; i < count; ++i) wrong += viaLib[i] != viaCollNet[i];
    comm.allReduce(&wrong, &total, 1, xsite::DataType::kInt64, xsite::ReduceOp::kSum);
    if (rank == 0) {
      const double lib = (tLib + tLib2) / 2;
      printf("# xsite_collnet_perf: %s; transports: %s\n", comm.describeTopology().c_str(),
             comm.describeTransports().c_str());
      printf("# all-reduce float sum, %zu bytes, %d iterations, slowest rank\n", bytes, iters);
      printf("  library hierarchical   %10.1f ms   (%.1f and %.1f ms, before and after)\n",
             lib * 1e3, tLib * 1e3, tLib2 * 1e3);
      printf("  CollNet iallreduce     %10.1f ms   %.2fx the library's time\n", tCollNet * 1e3,
             tCollNet / lib);
      printf("  elements that differ: %ld\n", total);
    }
    check(cn->closeColl(coll), "closeColl");
    check(cn->finalize(ctx), "finalize");
    return total == 0 ? 0 : 1;
  } catch (const xsite::Error& e) {
    die(e.what());
  }
}
