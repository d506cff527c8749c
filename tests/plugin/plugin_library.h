// What every tests/plugin program needs first: the built libnccl-net-xsite.so (XSITE_PLUGIN_PATH),
// opened once as NCCL opens it, its tables looked up by name, and the small files the ranks of a
// multi-process test exchange handles and results through. Header-only.
#pragma once

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace xsite_plugin_test {

inline void* pluginLibrary() {
  static void* handle = [] {
    void* h = dlopen(XSITE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);  // as NCCL opens it
    if (h == nullptr) {
      std::fprintf(stderr, "dlopen: %s\n", dlerror());
      std::abort();
    }
    return h;
  }();
  return handle;
}

// The table exported as `name`, or nullptr when the library has none.
template <typename Table>
Table* pluginTable(const char* name) {
  return static_cast<Table*>(dlsym(pluginLibrary(), name));
}

inline std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Written beside, then renamed: a reader polling for the file never sees half of it.
inline bool writeFileAtomic(const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::binary)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace xsite_plugin_test
