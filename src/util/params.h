// The params registry: every environment variable xsite reads, parsed and validated once.
// The list itself is params.def; this is the only code that reads the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace xsite::params {

enum class Id : int {
#define XSITE_PARAM(id, name, kind, def, doc) k##id,
#define XSITE_CHOICE(id, name, def, words, doc) k##id,
#define XSITE_RANGE(id, name, def, lo, hi, doc) k##id,
#define XSITE_EXTERNAL(id, name, doc) k##id,
#include "util/params.def"
#undef XSITE_PARAM
#undef XSITE_CHOICE
#undef XSITE_RANGE
#undef XSITE_EXTERNAL
  kCount
};

enum class Kind { kInt, kSize, kString, kDouble };

// A time setting given in seconds (XSITE_TIMEOUT, XSITE_BOOTSTRAP_TIMEOUT) as a duration.
inline std::chrono::milliseconds fromSeconds(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

struct Info {
  const char* name;
  Kind kind;
  const char* defaultValue;  // "" means unset
  const char* doc;
  bool external;  // a launcher's variable, not ours
  const char* choices = nullptr;  // String: the words it may be, '|'-separated (null: any)
  int64_t min = INT64_MIN, max = INT64_MAX;  // Int: its bounds
};

const Info& info(Id id) noexcept;

// Where values come from: the process environment in production, a map in tests.
using Lookup = std::function<std::optional<std::string>(const char* name)>;

class Params {
 public:
  // Parses every variable; throws xsite::Error(kInvalidUsage) naming the first bad one.
  explicit Params(const Lookup& lookup);

  // The process-wide snapshot of the environment, parsed on first use.
  static const Params& global();
  static Lookup environmentLookup();

  bool isSet(Id id) const { return values_[index(id)].set; }
  int64_t integer(Id id) const;  // Int and Size kinds; -1 when unset without default
  double real(Id id) const;
  const std::string& string(Id id) const { return values_[index(id)].text; }

  // The effective configuration, one line per variable: NAME=value (default|set) # doc
  std::string describe(bool includeExternal = true) const;

 private:
  struct Value {
    bool set = false;  // given in the environment (not a default)
    std::string text;  // the effective text (set value or default)
    int64_t integer = -1;
    double real = 0;
  };
  static size_t index(Id id) { return static_cast<size_t>(id); }
  std::vector<Value> values_;
};

// Parses "4M", "256K", "1G", "123" (powers of 1024); nullopt on garbage.
std::optional<int64_t> parseSize(const std::string& text);

}  // namespace xsite::params
