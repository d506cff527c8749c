// The harness of tests/plugin's net tests: libnccl-net-xsite.so opened and its tables found by
// name as NCCL 2.28.9 does (dlopen, dlsym), a logger that records, and helpers that post and poll
// as NCCL's proxy does. Header-only; each test program is one translation unit.
#pragma once

#include <dlfcn.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/tuner.h"
#include "tests/plugin/plugin_library.h"

namespace xsite_plugin_test {

inline std::mutex gLogMu;
inline std::vector<std::string> gLog;

inline void recordLog(ncclDebugLogLevel level, unsigned long /*flags*/, const char* /*file*/, int /*line*/,
               const char* fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> lock(gLogMu);
  gLog.push_back(std::to_string(static_cast<int>(level)) + " " + buf);
}

inline bool logHas(const std::string& needle) {
  std::lock_guard<std::mutex> lock(gLogMu);
  for (const auto& l : gLog)
    if (l.find(needle) != std::string::npos) return true;
  return false;
}

struct Lib {
  void* handle = nullptr;
  ncclNet_v11_t* v11 = nullptr;
  ncclNet_v10_t* v10 = nullptr;
  ncclTuner_v5_t* t5 = nullptr;
  ncclTuner_v4_t* t4 = nullptr;
  ncclTuner_v3_t* t3 = nullptr;
};

inline Lib& lib() {
  static Lib l = [] {
    Lib x;
    x.handle = pluginLibrary();
    x.v11 = pluginTable<ncclNet_v11_t>("ncclNetPlugin_v11");
    x.v10 = pluginTable<ncclNet_v10_t>("ncclNetPlugin_v10");
    x.t5 = pluginTable<ncclTuner_v5_t>("ncclTunerPlugin_v5");
    x.t4 = pluginTable<ncclTuner_v4_t>("ncclTunerPlugin_v4");
    x.t3 = pluginTable<ncclTuner_v3_t>("ncclTunerPlugin_v3");
    return x;
  }();
  return l;
}

inline ncclNet_v11_t& net() {
  return *lib().v11;
}

inline void* initCtx() {
  void* ctx = reinterpret_cast<void*>(0xdead);
  ncclNetCommConfig_v11_t config{NCCL_NET_TRAFFIC_CLASS_UNDEF};
  EXPECT_EQ(net().init(&ctx, 0x1234, &config, recordLog, nullptr), ncclSuccess);
  EXPECT_NE(ctx, nullptr);
  return ctx;
}

struct Pair {
  void* send = nullptr;
  void* recv = nullptr;
};

// The receiver listens, the handle travels (here: memory), the sender connects and the receiver
// accepts, both polled until non-null; then closeListen, as NCCL's proxy does.
inline Pair connectPair(void* ctx) {
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  std::memset(handle, 0xAB, sizeof(handle));  // NCCL's buffer is not zeroed for us
  void* listenComm = nullptr;
  EXPECT_EQ(net().listen(ctx, 0, handle, &listenComm), ncclSuccess);
  EXPECT_NE(listenComm, nullptr);
  char copy[NCCL_NET_HANDLE_MAXSIZE];
  std::memcpy(copy, handle, sizeof(copy));  // the peer's copy, after the bootstrap exchange
  Pair p;
  for (int i = 0; i < 100000 && (p.send == nullptr || p.recv == nullptr); ++i) {
    if (p.send == nullptr) {
      EXPECT_EQ(net().connect(ctx, 0, copy, &p.send, nullptr), ncclSuccess);
    }
    if (p.recv == nullptr) {
      EXPECT_EQ(net().accept(listenComm, &p.recv, nullptr), ncclSuccess);
    }
    if (p.send == nullptr || p.recv == nullptr) usleep(10);
  }
  EXPECT_NE(p.send, nullptr);
  EXPECT_NE(p.recv, nullptr);
  EXPECT_EQ(net().closeListen(listenComm), ncclSuccess);
  return p;
}

inline void closePair(const Pair& p) {
  EXPECT_EQ(net().closeSend(p.send), ncclSuccess);
  EXPECT_EQ(net().closeRecv(p.recv), ncclSuccess);
}

// Polls until done; returns the result of the last test().
inline ncclResult_t waitDone(void* req, int* sizes, int limit = 2000000) {
  int done = 0;
  for (int i = 0; i < limit; ++i) {
    ncclResult_t r = net().test(req, &done, sizes);
    if (r != ncclSuccess || done) return r;
  }
  return ncclInternalError;
}

// Polls a send and a receive alternately until both are done, as NCCL's proxy does.
inline ncclResult_t waitBoth(void* a, int* aSizes, void* b, int* bSizes) {
  int aDone = 0, bDone = 0;
  for (int i = 0; i < 20000000 && !(aDone && bDone); ++i) {
    if (!aDone) {
      ncclResult_t r = net().test(a, &aDone, aSizes);
      if (r != ncclSuccess) return r;
    }
    if (!bDone) {
      ncclResult_t r = net().test(b, &bDone, bSizes);
      if (r != ncclSuccess) return r;
    }
  }
  return aDone && bDone ? ncclSuccess : ncclInternalError;
}

inline void* postSend(void* comm, void* data, size_t n, int tag) {
  void* req = nullptr;
  for (int i = 0; i < 100000 && req == nullptr; ++i)
    EXPECT_EQ(net().isend(comm, data, n, tag, nullptr, nullptr, &req), ncclSuccess);
  return req;
}

inline void* postRecv(void* comm, int n, void** data, size_t* sizes, int* tags) {
  void* req = nullptr;
  void* mh[8] = {};
  void* ph[8] = {};
  EXPECT_EQ(net().irecv(comm, n, data, sizes, tags, mh, ph, &req), ncclSuccess);
  return req;
}

// memcmp, but an empty range (whose data() may be null) is equal.
inline bool sameBytes(const void* a, const void* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

inline std::vector<char> pattern(size_t n, int seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return v;
}

}  // namespace xsite_plugin_test
