/* libxsite_preload.so: LD_PRELOAD it and NCCL loads xsite's net plugin and tuner, with no change
 * to the program or its launch script beyond LD_PRELOAD.
 *
 * Its constructor sets NCCL's own variables, each one only if it is not in the environment yet
 * (a variable the user set, even to the empty string, is never touched):
 *   NCCL_NET_PLUGIN    the absolute path of libnccl-net-xsite.so beside this library, or "xsite"
 *                      (NCCL then dlopens "xsite", then libnccl-net-xsite.so by the search path)
 *   NCCL_TUNER_PLUGIN  the same path (the tuner lives in the net library), or
 *                      "libnccl-net-xsite.so" (a lib...so name NCCL dlopens by the search path;
 *                      "xsite" would make it look for libnccl-tuner-xsite.so)
 * The path is used only when the file exists and NCCL would take it as one entry: at most 254
 * characters (NCCL's limit) and no comma (NCCL_NET_PLUGIN is a comma-separated list).
 *
 * The one documented exception to "every environment variable goes through util/params.def":
 * this shim is a separate, tiny C library that must not drag the xsite core (or a C++ runtime)
 * into every process it is preloaded into. It reads no variable and sets only NCCL's two, with
 * setenv(..., 0). It exports no symbol (exports.map). A constructor of a preloaded library runs
 * before main and before any thread exists, so setenv is safe here. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char kPluginFile[] = "libnccl-net-xsite.so";
enum { kNcclMaxEntry = 254 }; /* NCCL keeps 255 bytes per plugin name, terminator included */

/* Writes the path of libnccl-net-xsite.so in this library's directory (symbolic links of the
 * preload resolved) to out; returns 0 when there is no usable file there. */
static int pluginBesideUs(char* out, size_t size) {
  Dl_info info;
  char self[PATH_MAX];
  const char* slash;
  size_t dirLen;
  /* Any address inside this library names it; kPluginFile is one. */
  if (dladdr(kPluginFile, &info) == 0 || info.dli_fname == NULL) return 0;
  if (realpath(info.dli_fname, self) == NULL) return 0;
  slash = strrchr(self, '/');
  if (slash == NULL) return 0;
  dirLen = (size_t)(slash - self) + 1;
  if (dirLen + sizeof(kPluginFile) > size) return 0;
  memcpy(out, self, dirLen);
  memcpy(out + dirLen, kPluginFile, sizeof(kPluginFile));
  if (strlen(out) > kNcclMaxEntry || strchr(out, ',') != NULL) return 0;
  return access(out, R_OK) == 0;
}

__attribute__((constructor)) static void xsitePreloadInit(void) {
  char path[PATH_MAX];
  int found = pluginBesideUs(path, sizeof(path));
  setenv("NCCL_NET_PLUGIN", found ? path : "xsite", 0);
  setenv("NCCL_TUNER_PLUGIN", found ? path : kPluginFile, 0);
}
