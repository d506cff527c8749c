// xsite_net_plugin_perf: goodput of one connection of the built libnccl-net-xsite.so, driven
// through ncclNetPlugin_v11 as NCCL 2.28's proxy drives a net: the sender keeps at most K isends
// of one slot each in flight (K x slot bytes: NCCL's 8 x 512 KiB by default), reposting as test()
// reports them done; the receiver keeps K irecvs of one slot posted. Two processes: rank 1
// (XSITE_RANK, as tools/xsite-run sets it) listens and writes its connect handle to a file,
// rank 0 reads it, connects and sends. The receiver prints one row per iteration (the sender
// streams every iteration back to back; the first row starts at the first completed message).
//
// Usage: xsite_net_plugin_perf -f HANDLE_FILE [-p PLUGIN.so] [-t streams|tcp] [-b BYTES]
//                              [-s SLOT] [-k SLOTS] [-n ITERS] [-c]
//   -t sets XSITE_WAN_TRANSPORT for this process before the plugin's init: streams (cross-site
//      WAN streams with eager staging) or tcp (one plain socket, the baseline).
//   -c fills every message with a pattern of its sequence number and checks every byte on
//      arrival (without it only the sequence number in the first 8 bytes is checked); the
//      receiver's last line says "checked N bytes: all correct".
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "plugin/abi/net_v11.h"

namespace {

using Clock = std::chrono::steady_clock;

#ifndef XSITE_PLUGIN_PATH
#define XSITE_PLUGIN_PATH "libnccl-net-xsite.so"
#endif

struct Options {
  std::string plugin = XSITE_PLUGIN_PATH;
  std::string handleFile;
  std::string transport;  // empty: the environment's XSITE_WAN_TRANSPORT
  size_t bytes = size_t{256} << 20;
  size_t slot = size_t{512} << 10;
  int slots = 8;
  int iters = 3;
  bool check = false;
};

// -c: the bytes of message `seq`.
void fillPattern(char* p, size_t n, size_t seq) {
  uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
}

size_t parseSize(const char* s) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  switch (*end) {
    case 'K':
    case 'k':
      v *= 1024;
      break;
    case 'M':
    case 'm':
      v *= 1024 * 1024;
      break;
    case 'G':
    case 'g':
      v *= 1024.0 * 1024 * 1024;
      break;
    default:
      break;
  }
  return static_cast<size_t>(v);
}

[[noreturn]] void die(const char* what, ncclResult_t r) {
  std::fprintf(stderr, "xsite_net_plugin_perf: %s failed (ncclResult %d)\n", what,
               static_cast<int>(r));
  std::exit(1);
}

#define CHECK(call)                        \
  do {                                     \
    ncclResult_t r_ = (call);              \
    if (r_ != ncclSuccess) die(#call, r_); \
  } while (0)

void logLine(ncclDebugLogLevel level, unsigned long, const char*, int, const char* fmt, ...) {
  if (level > NCCL_LOG_WARN && std::getenv("PERF_VERBOSE") == nullptr) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int sender(ncclNet_v11_t& net, void* ctx, const Options& o, size_t messages) {
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  for (int i = 0;; ++i) {  // rank 1 writes the file once it listens
    FILE* f = std::fopen(o.handleFile.c_str(), "rb");
    if (f != nullptr) {
      size_t got = std::fread(handle, 1, sizeof(handle), f);
      std::fclose(f);
      if (got == sizeof(handle)) break;
    }
    if (i > 60000) {
      std::fprintf(stderr, "xsite_net_plugin_perf: no handle in %s\n", o.handleFile.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void* s = nullptr;
  while (s == nullptr) CHECK(net.connect(ctx, 0, handle, &s, nullptr));
  std::vector<std::vector<char>> bufs(o.slots, std::vector<char>(o.slot, 'x'));
  std::vector<void*> mh(o.slots), req(o.slots, nullptr);
  for (int j = 0; j < o.slots; ++j)
    CHECK(net.regMr(s, bufs[j].data(), o.slot, NCCL_PTR_HOST, &mh[j]));
  size_t next = 0, done = 0;
  const auto t0 = Clock::now();
  while (done < messages) {
    for (int j = 0; j < o.slots; ++j) {
      if (req[j] == nullptr) {
        if (next >= messages || next % o.slots != static_cast<size_t>(j)) continue;
        if (o.check) fillPattern(bufs[j].data(), o.slot, next);
        std::memcpy(bufs[j].data(), &next, sizeof(next));  // the receiver checks the order
        CHECK(net.isend(s, bufs[j].data(), o.slot, 0, mh[j], nullptr, &req[j]));
        if (req[j] != nullptr) ++next;
        continue;
      }
      int d = 0;
      CHECK(net.test(req[j], &d, nullptr));
      if (d) {
        req[j] = nullptr;
        ++done;
      }
    }
  }
  const double staged = secondsSince(t0);
  for (int j = 0; j < o.slots; ++j) CHECK(net.deregMr(s, mh[j]));
  const auto c0 = Clock::now();
  CHECK(net.closeSend(s));  // delivers what is still staged
  std::printf("sender: %zu messages completed in %.3f s, closeSend took %.3f s\n", messages, staged,
              secondsSince(c0));
  return 0;
}

int receiver(ncclNet_v11_t& net, void* ctx, const Options& o, size_t messages, size_t perIter) {
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* l = nullptr;
  CHECK(net.listen(ctx, 0, handle, &l));
  const std::string tmp = o.handleFile + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr || std::fwrite(handle, 1, sizeof(handle), f) != sizeof(handle)) return 1;
  std::fclose(f);
  std::rename(tmp.c_str(), o.handleFile.c_str());
  void* r = nullptr;
  while (r == nullptr) CHECK(net.accept(l, &r, nullptr));
  CHECK(net.closeListen(l));
  std::vector<std::vector<char>> bufs(o.slots, std::vector<char>(o.slot));
  std::vector<void*> mh(o.slots), req(o.slots, nullptr);
  int tag = 0;
  for (int j = 0; j < o.slots; ++j)
    CHECK(net.regMr(r, bufs[j].data(), o.slot, NCCL_PTR_HOST, &mh[j]));
  auto post = [&](int j) {
    void* data[1] = {bufs[j].data()};
    size_t size[1] = {o.slot};
    while (req[j] == nullptr) CHECK(net.irecv(r, 1, data, size, &tag, &mh[j], nullptr, &req[j]));
  };
  for (int j = 0; j < o.slots && static_cast<size_t>(j) < messages; ++j) post(j);
  std::printf("%6s %14s %10s %12s\n", "iter", "bytes", "seconds", "Mbit/s");
  Clock::time_point start;
  double total = 0;
  size_t totalBytes = 0, checked = 0;
  std::vector<char> want(o.check ? o.slot : 0);
  for (size_t m = 0; m < messages; ++m) {
    const int j = static_cast<int>(m % o.slots);
    int d = 0, size = -1;
    while (!d) CHECK(net.test(req[j], &d, &size));
    req[j] = nullptr;
    size_t seq = 0;
    std::memcpy(&seq, bufs[j].data(), sizeof(seq));
    if (static_cast<size_t>(size) != o.slot || seq != m) {
      std::fprintf(stderr, "xsite_net_plugin_perf: message %zu: size %d, sequence %zu\n", m, size,
                   seq);
      return 1;
    }
    if (o.check) {
      fillPattern(want.data(), o.slot, m);
      if (std::memcmp(want.data() + sizeof(seq), bufs[j].data() + sizeof(seq), o.slot - sizeof(seq)) != 0) {
        std::fprintf(stderr, "xsite_net_plugin_perf: message %zu: wrong bytes\n", m);
        return 1;
      }
      checked += o.slot;
    }
    if (m + o.slots < messages) post(j);
    if (m == 0) {
      start = Clock::now();  // the first message pays the connection's start: not counted
      continue;
    }
    if ((m + 1) % perIter == 0) {
      const size_t bytes = (m + 1 == perIter ? perIter - 1 : perIter) * o.slot;
      const double sec = secondsSince(start);
      std::printf("%6zu %14zu %10.3f %12.1f\n", m / perIter, bytes, sec, bytes * 8 / sec / 1e6);
      total += sec;
      totalBytes += bytes;
      start = Clock::now();
    }
  }
  std::printf("all    %14zu %10.3f %12.1f\n", totalBytes, total, totalBytes * 8 / total / 1e6);
  if (o.check) std::printf("checked %zu bytes: all correct\n", checked);
  for (int j = 0; j < o.slots; ++j) CHECK(net.deregMr(r, mh[j]));
  CHECK(net.closeRecv(r));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int c;
  while ((c = getopt(argc, argv, "p:f:t:b:s:k:n:c")) != -1) {
    switch (c) {
      case 'p':
        o.plugin = optarg;
        break;
      case 'f':
        o.handleFile = optarg;
        break;
      case 't':
        o.transport = optarg;
        break;
      case 'b':
        o.bytes = parseSize(optarg);
        break;
      case 's':
        o.slot = parseSize(optarg);
        break;
      case 'k':
        o.slots = std::atoi(optarg);
        break;
      case 'n':
        o.iters = std::atoi(optarg);
        break;
      case 'c':
        o.check = true;
        break;
      default:
        std::fprintf(stderr,
                     "usage: %s -f HANDLE_FILE [-p PLUGIN.so] [-t streams|tcp] [-b BYTES] "
                     "[-s SLOT] [-k SLOTS] [-n ITERS] [-c]\n",
                     argv[0]);
        return 2;
    }
  }
  if (o.handleFile.empty() || o.slots < 1 || o.slot < sizeof(size_t) || o.iters < 1) {
    std::fprintf(stderr, "xsite_net_plugin_perf: -f HANDLE_FILE is required (see the usage)\n");
    return 2;
  }
  if (!o.transport.empty()) setenv("XSITE_WAN_TRANSPORT", o.transport.c_str(), 1);
  const char* rankText = std::getenv("XSITE_RANK");
  const int rank = rankText != nullptr ? std::atoi(rankText) : 0;
  void* lib = dlopen(o.plugin.c_str(), RTLD_NOW | RTLD_LOCAL);  // as NCCL opens it
  if (lib == nullptr) {
    std::fprintf(stderr, "xsite_net_plugin_perf: dlopen: %s\n", dlerror());
    return 1;
  }
  auto* net = static_cast<ncclNet_v11_t*>(dlsym(lib, "ncclNetPlugin_v11"));
  if (net == nullptr) {
    std::fprintf(stderr, "xsite_net_plugin_perf: no ncclNetPlugin_v11 in %s\n", o.plugin.c_str());
    return 1;
  }
  void* ctx = nullptr;
  ncclNetCommConfig_v11_t config{NCCL_NET_TRAFFIC_CLASS_UNDEF};
  CHECK(net->init(&ctx, 0x5eed, &config, logLine, nullptr));
  int ndev = 0;
  CHECK(net->devices(&ndev));
  const size_t perIter = std::max<size_t>(1, o.bytes / o.slot);
  const size_t messages = perIter * static_cast<size_t>(o.iters);
  if (rank == 1) {
    std::printf(
        "# net plugin goodput: %s, %d slots x %zu bytes, %zu bytes x %d iterations, "
        "XSITE_WAN_TRANSPORT=%s\n",
        net->name, o.slots, o.slot, perIter * o.slot, o.iters,
        std::getenv("XSITE_WAN_TRANSPORT") ? std::getenv("XSITE_WAN_TRANSPORT") : "streams");
  }
  int rc = rank == 1 ? receiver(*net, ctx, o, messages, perIter) : sender(*net, ctx, o, messages);
  CHECK(net->finalize(ctx));
  std::fflush(stdout);
  return rc;
}
