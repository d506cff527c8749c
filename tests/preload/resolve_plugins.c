/* tests/preload: finds the net plugin and the tuner the way NCCL 2.28 does (NCCL_ABI.md 1.3, 1.5;
 * nccl src/plugin/plugin_open.cc, net.cc, tuner.cc) and prints what it found, so that the test can
 * run it with and without LD_PRELOAD=libxsite_preload.so. Output, one item a line:
 *   env NCCL_NET_PLUGIN=<value> | env NCCL_NET_PLUGIN unset      (the same for NCCL_TUNER_PLUGIN)
 *   net <real path> ncclNetPlugin_vN | net none
 *   tuner <real path> ncclTunerPlugin_vN | tuner none
 * It reads the variables at the start of main, after every constructor has run, as NCCL does at
 * its first communicator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { kMaxName = 255, kMaxExternalNets = 14 };

/* NCCL's two-step open: the name as written (a case-insensitive prefix of STATIC_PLUGIN means the
 * program itself), then <prefix>-<name>.so unless the name has a '/' or is already lib...so. An
 * empty name opens <prefix>.so. Fills opened with the name that loaded. */
static void* openPluginLib(const char* prefix, const char* name, char* opened) {
  char lib[kMaxName];
  size_t n = name ? strlen(name) : 0;
  void* handle;
  if (n > 0)
    snprintf(lib, sizeof(lib), "%s", name);
  else
    snprintf(lib, sizeof(lib), "%s.so", prefix);
  handle = dlopen(strncasecmp(lib, "STATIC_PLUGIN", strlen(lib)) == 0 ? NULL : lib,
                  RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL && n > 0 && strchr(name, '/') == NULL &&
      (strncmp(name, "lib", 3) != 0 || n < 3 || strcmp(name + n - 3, ".so") != 0)) {
    snprintf(lib, sizeof(lib), "%s-%s.so", prefix, name);
    handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  }
  if (handle != NULL) snprintf(opened, kMaxName, "%s", lib);
  return handle;
}

/* The newest table of kind (e.g. "ncclNetPlugin_v") from newest down to oldest; prints it. */
static int findTable(const char* what, void* lib, const char* kind, int newest, int oldest) {
  char sym[64];
  char real[PATH_MAX];
  Dl_info info;
  int v;
  for (v = newest; v >= oldest; --v) {
    void* table;
    snprintf(sym, sizeof(sym), "%s%d", kind, v);
    table = dlsym(lib, sym);
    if (table == NULL) continue;
    if (dladdr(table, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, real) == NULL)
      snprintf(real, sizeof(real), "%s", "(unknown)");
    printf("%s %s %s\n", what, real, sym);
    return 1;
  }
  return 0;
}

static void printEnv(const char* name) {
  const char* value = getenv(name);
  if (value == NULL)
    printf("env %s unset\n", name);
  else
    printf("env %s=%s\n", name, value);
}

int main(void) {
  const char* netEnv = getenv("NCCL_NET_PLUGIN");
  const char* tunerEnv = getenv("NCCL_TUNER_PLUGIN");
  char netOpened[kMaxName] = "";
  char tunerOpened[kMaxName];
  void* tuner = NULL;
  int netFound = 0;
  printEnv("NCCL_NET_PLUGIN");
  printEnv("NCCL_TUNER_PLUGIN");

  /* Net: unset -> libnccl-net.so; "none" -> nothing; else a comma list, entries over 254
   * characters ignored, at most 14. The first entry that loads with a table is reported (NCCL
   * would then init it; a failed init falls through to the next, then IB and Socket). */
  if (netEnv == NULL) {
    void* lib = openPluginLib("libnccl-net", "", netOpened);
    if (lib != NULL) netFound = findTable("net", lib, "ncclNetPlugin_v", 11, 6);
  } else if (strcasecmp(netEnv, "none") != 0) {
    char* list = strdup(netEnv);
    char* save = NULL;
    char* entry;
    int count = 0;
    for (entry = strtok_r(list, ",", &save); entry != NULL && !netFound && count < kMaxExternalNets;
         entry = strtok_r(NULL, ",", &save)) {
      void* lib;
      if (strlen(entry) + 1 > kMaxName) continue;
      ++count;
      lib = openPluginLib("libnccl-net", entry, netOpened);
      if (lib != NULL) netFound = findTable("net", lib, "ncclNetPlugin_v", 11, 6);
    }
    free(list);
  }
  if (!netFound) {
    netOpened[0] = '\0'; /* NCCL closes a library without a net table and forgets its name */
    printf("net none\n");
  }

  /* Tuner: "none" -> nothing; else the same two-step open with libnccl-tuner (unset or empty ->
   * libnccl-tuner.so), falling back to the net plugin library NCCL opened. */
  if (tunerEnv == NULL || strcasecmp(tunerEnv, "none") != 0) {
    tuner = openPluginLib("libnccl-tuner", tunerEnv, tunerOpened);
    if (tuner == NULL && netOpened[0] != '\0') tuner = dlopen(netOpened, RTLD_NOW | RTLD_LOCAL);
  }
  if (tuner == NULL || !findTable("tuner", tuner, "ncclTunerPlugin_v", 5, 2))
    printf("tuner none\n");
  return 0;
}
