// The params registry: every variable of params.def gets a value cut from the fuzzer's bytes
// (segments separated by '\n'; a segment starting with '\x01' leaves the variable unset), and
// parseSize gets the first segment. Params(lookup) may only succeed or throw xsite::Error.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "fuzz_input.h"
#include "util/params.h"
#include "xsite/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xsite::params;
  xsite::fuzz::Input in(data, size);
  std::map<std::string, std::string> env;
  const std::string first = in.until('\n');
  if (auto v = parseSize(first); v && *v < 0) __builtin_trap();  // documented: never negative
  if (first.empty() || first[0] != '\x01') env[info(Id(0)).name] = first;
  for (int i = 1; i < static_cast<int>(Id::kCount) && !in.empty(); ++i) {
    const std::string v = in.until('\n');
    if (v.empty() || v[0] != '\x01') env[info(Id(i)).name] = v;
  }
  const Lookup lookup = [&](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  try {
    const Params p(lookup);
    for (int i = 0; i < static_cast<int>(Id::kCount); ++i) {
      const Id id = Id(i);
      (void)p.isSet(id);
      (void)p.integer(id);
      (void)p.real(id);
      (void)p.string(id);
      if (info(id).kind == Kind::kSize && !p.string(id).empty() && p.integer(id) < 0) __builtin_trap();
    }
    (void)p.describe();
  } catch (const xsite::Error&) {
  }
  return 0;
}
