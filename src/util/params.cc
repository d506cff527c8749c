#include "util/params.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "xsite/error.h"

namespace xsite::params {
namespace {

const Info kInfos[] = {
#define XSITE_PARAM(id, name, kind, def, doc) {name, Kind::k##kind, def, doc, false},
#define XSITE_CHOICE(id, name, def, words, doc) {name, Kind::kString, def, doc, false, words},
#define XSITE_RANGE(id, name, def, lo, hi, doc) {name, Kind::kInt, def, doc, false, nullptr, lo, hi},
#define XSITE_EXTERNAL(id, name, doc) {name, Kind::kString, "", doc, true},
#include "util/params.def"
#undef XSITE_PARAM
#undef XSITE_CHOICE
#undef XSITE_RANGE
#undef XSITE_EXTERNAL
};
static_assert(sizeof(kInfos) / sizeof(kInfos[0]) == static_cast<size_t>(Id::kCount));

std::optional<int64_t> parseInteger(const std::string& text) {
  // Digits with an optional leading '-' only: no spaces, no '+', no hex.
  if (text.empty() || text.find_first_not_of("-0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return v;
}

std::optional<double> parseDouble(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v) || std::isspace(static_cast<unsigned char>(text[0])))
    return std::nullopt;
  return v;
}

// "a|b|c" as "a, b or c"; whether `text` is one of them.
std::string wordList(const char* words) {
  std::string all(words), out;
  const size_t last = all.rfind('|');
  for (size_t i = 0; i < all.size(); ++i)
    out += all[i] != '|' ? std::string(1, all[i]) : i == last ? " or " : ", ";
  return out;
}
bool oneOf(const std::string& text, const char* words) {
  return !text.empty() && text.find('|') == std::string::npos &&
         ("|" + std::string(words) + "|").find("|" + text + "|") != std::string::npos;
}

[[noreturn]] void bad(const Info& info, const std::string& text, const std::string& expected) {
  throw Error(ErrorCategory::kInvalidUsage, std::string(info.name) + "='" + text +
                                                "' is not valid: expected " + expected + " (" +
                                                info.doc + ")");
}

}  // namespace

std::optional<int64_t> parseSize(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::string digits = text;
  int64_t mult = 1;
  switch (digits.back()) {
    case 'k': case 'K': mult = int64_t{1} << 10; break;
    case 'm': case 'M': mult = int64_t{1} << 20; break;
    case 'g': case 'G': mult = int64_t{1} << 30; break;
    default: break;
  }
  if (mult != 1) digits.pop_back();
  auto v = parseInteger(digits);
  if (!v || *v < 0 || *v > INT64_MAX / mult) return std::nullopt;
  return *v * mult;
}

const Info& info(Id id) noexcept { return kInfos[static_cast<size_t>(id)]; }

Params::Params(const Lookup& lookup) : values_(static_cast<size_t>(Id::kCount)) {
  for (size_t i = 0; i < values_.size(); ++i) {
    const Info& inf = kInfos[i];
    Value& v = values_[i];
    std::optional<std::string> given = lookup(inf.name);
    v.set = given.has_value();
    v.text = given ? *given : inf.defaultValue;
    // A choice has a default, so an empty value is a wrong word, not "unset".
    if (inf.choices && !oneOf(v.text, inf.choices)) bad(inf, v.text, wordList(inf.choices));
    if (v.text.empty()) continue;  // unset: integer stays -1
    switch (inf.kind) {
      case Kind::kInt: {
        auto n = parseInteger(v.text);
        if (!n) bad(inf, v.text, "an integer");
        if (*n < inf.min || *n > inf.max)
          bad(inf, v.text, "an integer within " + std::to_string(inf.min) + ".." + std::to_string(inf.max));
        v.integer = *n;
        v.real = static_cast<double>(*n);
        break;
      }
      case Kind::kSize: {
        auto n = parseSize(v.text);
        if (!n) bad(inf, v.text, "a size in bytes such as 65536, 256K, 4M or 1G");
        v.integer = *n;
        v.real = static_cast<double>(*n);
        break;
      }
      case Kind::kDouble: {
        auto d = parseDouble(v.text);
        // Seconds and rates: 1e12 is past any use, and keeps every conversion to an integer
        // (fromSeconds, the integer view) in range.
        if (!d || *d < 0 || *d > 1e12) bad(inf, v.text, "a non-negative number up to 1e12");
        v.real = *d;
        v.integer = static_cast<int64_t>(*d);
        break;
      }
      case Kind::kString:
        break;
    }
  }
}

Lookup Params::environmentLookup() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);  // the one getenv in xsite
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

const Params& Params::global() {
  static const Params params(environmentLookup());
  return params;
}

int64_t Params::integer(Id id) const { return values_[index(id)].integer; }
double Params::real(Id id) const { return values_[index(id)].real; }

std::string Params::describe(bool includeExternal) const {
  std::ostringstream out;
  for (size_t i = 0; i < values_.size(); ++i) {
    const Info& inf = kInfos[i];
    if (inf.external && (!includeExternal || !values_[i].set)) continue;
    // A secret is never printed (xsite-info -c output lands in logs and bug reports).
    const bool secret = i == index(Id::kJobSecret) && !values_[i].text.empty();
    out << inf.name << "=" << (secret ? std::string("<hidden>") : values_[i].text) << "  # "
        << (values_[i].set ? "set" : (values_[i].text.empty() ? "unset" : "default")) << "; "
        << inf.doc << "\n";
  }
  return out.str();
}

}  // namespace xsite::params
