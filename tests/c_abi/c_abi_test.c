/* tests/c_abi: a C99 program loads libnccl-net-xsite.so the way NCCL does (dlopen RTLD_NOW,
 * then dlsym by name) and finds exactly the expected tables: the net tables v11..v8 and the tuner
 * tables v5..v3, the CollNet tables v11..v8. It compiles the ABI declarations as
 * C, which also checks that plugin/abi is C-compatible. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/net_v8.h"
#include "plugin/abi/net_v9.h"
#include "plugin/abi/tuner.h"

static const char* const kExpected[] = {
    "ncclNetPlugin_v11",     "ncclNetPlugin_v10",     "ncclNetPlugin_v9",
    "ncclNetPlugin_v8",      "ncclCollNetPlugin_v11", "ncclCollNetPlugin_v10",
    "ncclCollNetPlugin_v9",  "ncclCollNetPlugin_v8",  "ncclTunerPlugin_v5",
    "ncclTunerPlugin_v4",    "ncclTunerPlugin_v3",
};
static const char* const kAbsent[] = {
    "ncclNetPlugin_v7",    "ncclNetPlugin_v12",  "ncclCollNetPlugin_v7", "ncclCollNetPlugin_v12",
    "ncclTunerPlugin_v2",  "ncclTunerPlugin_v6", "ncclGinPlugin_v11",
};

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "libnccl-net-xsite.so";
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  int failures = 0;
  size_t i;
  const ncclNet_v11_t* net;
  const ncclTuner_v5_t* tuner;
  const ncclCollNet_v11_t* collnet;
  if (lib == NULL) {
    fprintf(stderr, "c_abi: dlopen(%s): %s\n", path, dlerror());
    return 1;
  }
  for (i = 0; i < sizeof(kExpected) / sizeof(kExpected[0]); ++i)
    if (dlsym(lib, kExpected[i]) == NULL) {
      fprintf(stderr, "c_abi: %s missing\n", kExpected[i]);
      ++failures;
    }
  for (i = 0; i < sizeof(kAbsent) / sizeof(kAbsent[0]); ++i)
    if (dlsym(lib, kAbsent[i]) != NULL) {
      fprintf(stderr, "c_abi: %s exported but must not be\n", kAbsent[i]);
      ++failures;
    }
  net = (const ncclNet_v11_t*)dlsym(lib, "ncclNetPlugin_v11");
  if (net != NULL && (net->name == NULL || strcmp(net->name, "xsite") != 0 || net->init == NULL ||
                      net->finalize == NULL || net->test == NULL)) {
    fprintf(stderr, "c_abi: ncclNetPlugin_v11 is not filled in as declared\n");
    ++failures;
  }
  collnet = (const ncclCollNet_v11_t*)dlsym(lib, "ncclCollNetPlugin_v11");
  if (collnet != NULL &&
      (collnet->name == NULL || strcmp(collnet->name, "xsite") != 0 || collnet->init == NULL ||
       collnet->iallreduce == NULL || collnet->reduceSupport == NULL || collnet->finalize == NULL)) {
    fprintf(stderr, "c_abi: ncclCollNetPlugin_v11 is not filled in as declared\n");
    ++failures;
  }
  tuner = (const ncclTuner_v5_t*)dlsym(lib, "ncclTunerPlugin_v5");
  if (tuner != NULL &&
      (tuner->init == NULL || tuner->getCollInfo == NULL || tuner->finalize == NULL)) {
    fprintf(stderr, "c_abi: ncclTunerPlugin_v5 is not filled in as declared\n");
    ++failures;
  }
  dlclose(lib);
  if (failures == 0) printf("c_abi: the expected tables, nothing else\n");
  return failures == 0 ? 0 : 1;
}
