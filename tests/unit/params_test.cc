// The params registry: defaults, parsing of every kind, errors that name the variable, describe(),
// and the shape of the registry itself (params.def).
#include "util/params.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "xsite/error.h"

namespace xsite::params {
namespace {

using ::testing::HasSubstr;

Lookup mapLookup(std::map<std::string, std::string> env) {
  return [env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

Params make(std::map<std::string, std::string> env) { return Params(mapLookup(std::move(env))); }

// Constructs Params and returns the Error it throws; fails the test when it does not throw.
Error parseError(std::map<std::string, std::string> env) {
  try {
    make(std::move(env));
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "Params accepted invalid input";
  return Error(ErrorCategory::kInternal, "no error");
}

TEST(Params, DefaultsApplyWhenNothingIsSet) {
  Params p = make({});
  EXPECT_FALSE(p.isSet(Id::kChunkSize));
  EXPECT_EQ(p.integer(Id::kChunkSize), 4 << 20);
  EXPECT_EQ(p.integer(Id::kSliceSize), 256 << 10);
  EXPECT_EQ(p.integer(Id::kShmRingSize), 2 << 20);
  EXPECT_EQ(p.integer(Id::kSocketBufSize), 0);
  EXPECT_DOUBLE_EQ(p.real(Id::kBootstrapTimeout), 120.0);
  EXPECT_DOUBLE_EQ(p.real(Id::kWanLatencyUs), 5500.0);
  EXPECT_EQ(p.string(Id::kAlgo), "auto");
  EXPECT_EQ(p.string(Id::kDebug), "WARN");
  // Unset without a default: -1 and empty text.
  EXPECT_FALSE(p.isSet(Id::kRank));
  EXPECT_EQ(p.integer(Id::kRank), -1);
  EXPECT_EQ(p.string(Id::kRank), "");
  EXPECT_FALSE(p.isSet(Id::kTorchRank));
  EXPECT_EQ(p.string(Id::kMasterAddr), "");
}

TEST(Params, SetValuesOverrideDefaults) {
  Params p = make({{"XSITE_CHUNK_SIZE", "1G"},
                   {"XSITE_RANK", "3"},
                   {"XSITE_WAN_LATENCY_US", "12.5"},
                   {"XSITE_ALGO", "ring"},
                   {"RANK", "7"},
                   {"MASTER_ADDR", "10.1.2.3"}});
  EXPECT_TRUE(p.isSet(Id::kChunkSize));
  EXPECT_EQ(p.integer(Id::kChunkSize), int64_t{1} << 30);
  EXPECT_TRUE(p.isSet(Id::kRank));
  EXPECT_EQ(p.integer(Id::kRank), 3);
  EXPECT_DOUBLE_EQ(p.real(Id::kRank), 3.0);
  EXPECT_DOUBLE_EQ(p.real(Id::kWanLatencyUs), 12.5);
  EXPECT_EQ(p.integer(Id::kWanLatencyUs), 12);
  EXPECT_EQ(p.string(Id::kAlgo), "ring");
  EXPECT_TRUE(p.isSet(Id::kTorchRank));
  EXPECT_EQ(p.string(Id::kTorchRank), "7");
  EXPECT_EQ(p.string(Id::kMasterAddr), "10.1.2.3");
  // Unrelated variables keep their defaults.
  EXPECT_FALSE(p.isSet(Id::kSliceSize));
  EXPECT_EQ(p.integer(Id::kSliceSize), 256 << 10);
}

TEST(Params, SetToTheDefaultStillCountsAsSet) {
  Params p = make({{"XSITE_CHUNK_SIZE", "4M"}});
  EXPECT_TRUE(p.isSet(Id::kChunkSize));
  EXPECT_EQ(p.integer(Id::kChunkSize), 4 << 20);
}

TEST(Params, NegativeIntegersAreIntegers) {
  // Int kind accepts any integer; range checks belong to the reader (recordFromParams).
  Params p = make({{"XSITE_SITE", "-2"}});
  EXPECT_EQ(p.integer(Id::kSite), -2);
}

TEST(ParseSize, SuffixesArePowersOf1024) {
  EXPECT_EQ(parseSize("4M"), int64_t{4} << 20);
  EXPECT_EQ(parseSize("4m"), int64_t{4} << 20);
  EXPECT_EQ(parseSize("256K"), int64_t{256} << 10);
  EXPECT_EQ(parseSize("256k"), int64_t{256} << 10);
  EXPECT_EQ(parseSize("1G"), int64_t{1} << 30);
  EXPECT_EQ(parseSize("3g"), int64_t{3} << 30);
  EXPECT_EQ(parseSize("65536"), 65536);
  EXPECT_EQ(parseSize("0"), 0);
  EXPECT_EQ(parseSize("0K"), 0);
  EXPECT_EQ(parseSize("8589934592"), int64_t{8} << 30);  // beyond 32 bits
}

TEST(ParseSize, RejectsGarbage) {
  for (const char* bad : {"", "12Q", "M", "K", "-1", "-4M", "1.5M", "4MB", "4 M", "0x10",
                          "abc", "99999999999999999999"})
    EXPECT_EQ(parseSize(bad), std::nullopt) << "'" << bad << "'";
}

TEST(ParseSize, RejectsSizesThatOverflow) {
  EXPECT_EQ(parseSize("100000000000G"), std::nullopt);  // 1e11 * 2^30 > 2^63
  EXPECT_EQ(parseSize("9223372036854775807K"), std::nullopt);
}

TEST(Params, BadIntNamesVariableAndValue) {
  Error e = parseError({{"XSITE_RANK", "abc"}});
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
  EXPECT_THAT(e.what(), HasSubstr("XSITE_RANK"));
  EXPECT_THAT(e.what(), HasSubstr("'abc'"));
  EXPECT_THAT(e.what(), HasSubstr("integer"));
  for (const char* bad : {"12abc", "1.5", "3 ", "99999999999999999999"}) {
    Error e2 = parseError({{"XSITE_WORLD_SIZE", bad}});
    EXPECT_EQ(e2.category(), ErrorCategory::kInvalidUsage) << bad;
    EXPECT_THAT(e2.what(), HasSubstr("XSITE_WORLD_SIZE='" + std::string(bad) + "'"));
  }
}

TEST(Params, BadSizeNamesVariableAndValue) {
  Error e = parseError({{"XSITE_CHUNK_SIZE", "12Q"}});
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
  EXPECT_THAT(e.what(), HasSubstr("XSITE_CHUNK_SIZE"));
  EXPECT_THAT(e.what(), HasSubstr("'12Q'"));
  Error neg = parseError({{"XSITE_SLICE_SIZE", "-4K"}});
  EXPECT_THAT(neg.what(), HasSubstr("XSITE_SLICE_SIZE='-4K'"));
}

TEST(Params, BadDoubleNamesVariableAndValue) {
  Error e = parseError({{"XSITE_TIMEOUT", "-1"}});
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
  EXPECT_THAT(e.what(), HasSubstr("XSITE_TIMEOUT"));
  EXPECT_THAT(e.what(), HasSubstr("'-1'"));
  Error g = parseError({{"XSITE_WAN_RATE_MBIT", "fast"}});
  EXPECT_THAT(g.what(), HasSubstr("XSITE_WAN_RATE_MBIT='fast'"));
  // Past any use, and past what converts to milliseconds or an integer (found by fuzz_params).
  Error h = parseError({{"XSITE_TIMEOUT", "1e19"}});
  EXPECT_THAT(h.what(), HasSubstr("XSITE_TIMEOUT='1e19'"));
}

TEST(Params, AChoiceTakesOnlyItsWords) {
  EXPECT_EQ(make({{"XSITE_WAN_TRANSPORT", "tcp"}}).string(Id::kWanTransport), "tcp");
  EXPECT_EQ(make({}).string(Id::kSiteTransport), "auto");
  for (const char* bad : {"udp", "TCP", "", "tcp|streams", "streams "}) {
    Error e = parseError({{"XSITE_WAN_TRANSPORT", bad}});
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
    EXPECT_THAT(e.what(), HasSubstr("XSITE_WAN_TRANSPORT='" + std::string(bad) + "'"));
    EXPECT_THAT(e.what(), HasSubstr("expected streams or tcp"));
  }
  EXPECT_THAT(parseError({{"XSITE_SITE_TRANSPORT", "rdma"}}).what(),
              HasSubstr("expected ucx, tcp or auto"));
}

TEST(Params, ARangeTakesOnlyIntegersWithinIt) {
  EXPECT_EQ(make({{"XSITE_WAN_STREAMS", "64"}}).integer(Id::kWanStreams), 64);
  EXPECT_EQ(make({{"XSITE_WAN_STREAMS", "1"}}).integer(Id::kWanStreams), 1);
  for (const char* bad : {"0", "65", "-1"}) {
    Error e = parseError({{"XSITE_WAN_STREAMS", bad}});
    EXPECT_THAT(e.what(), HasSubstr("XSITE_WAN_STREAMS='" + std::string(bad) + "'"));
    EXPECT_THAT(e.what(), HasSubstr("an integer within 1..64"));
  }
  EXPECT_THAT(parseError({{"XSITE_WAN_LANES", "9"}}).what(), HasSubstr("within 0..8"));
  EXPECT_THAT(parseError({{"XSITE_WAN_LANES", "x"}}).what(), HasSubstr("an integer"));
}

TEST(Params, ErrorMentionsTheFirstBadVariableOnly) {
  // Two bad values: the error is about one of them, and names it with its own value.
  Error e = parseError({{"XSITE_RANK", "x"}, {"XSITE_TIMEOUT", "-3"}});
  std::string what = e.what();
  bool rank = what.find("XSITE_RANK='x'") != std::string::npos;
  bool timeout = what.find("XSITE_TIMEOUT='-3'") != std::string::npos;
  EXPECT_NE(rank, timeout) << what;
}

TEST(Params, DescribeNeverPrintsTheJobSecret) {
  Params p = make({{"XSITE_JOB_SECRET", "do-not-print-me-0123456789"}});
  const std::string d = p.describe();
  EXPECT_THAT(d, HasSubstr("XSITE_JOB_SECRET=<hidden>"));
  EXPECT_EQ(d.find("do-not-print-me"), std::string::npos);
}

TEST(Params, DescribeListsEveryVariableWithItsOrigin) {
  Params p = make({{"XSITE_RANK", "3"}, {"RANK", "3"}});
  std::string d = p.describe();
  for (int i = 0; i < static_cast<int>(Id::kCount); ++i) {
    const Info& inf = info(static_cast<Id>(i));
    const std::string name = inf.name;
    auto at = d.find("\n" + name + "=");
    if (d.compare(0, name.size() + 1, name + "=") == 0) at = 0;
    if (inf.external && name != "RANK") {
      EXPECT_EQ(at, std::string::npos) << "unset launcher variable listed: " << name;
      continue;
    }
    ASSERT_NE(at, std::string::npos) << name << " missing from\n" << d;
    std::string line = d.substr(at == 0 ? 0 : at + 1);
    line = line.substr(0, line.find('\n'));
    const bool set = name == "XSITE_RANK" || name == "RANK";
    const char* origin = set ? "# set;" : (*inf.defaultValue ? "# default;" : "# unset;");
    EXPECT_THAT(line, HasSubstr(origin)) << line;
    EXPECT_THAT(line, HasSubstr(inf.doc)) << line;
  }
  EXPECT_THAT(d, HasSubstr("XSITE_RANK=3  # set;"));
  EXPECT_THAT(d, HasSubstr("XSITE_CHUNK_SIZE=4M  # default;"));
  EXPECT_THAT(d, HasSubstr("XSITE_TOPO_FILE=  # unset;"));
  // Launcher variables can be left out.
  std::string ours = p.describe(/*includeExternal=*/false);
  EXPECT_THAT(ours, HasSubstr("XSITE_RANK=3"));
  EXPECT_EQ(ours.find("\nRANK="), std::string::npos);
  EXPECT_EQ(ours.rfind("RANK=", 0), std::string::npos);
}

TEST(Registry, NamesAndDocsAreWellFormed) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(Id::kCount); ++i) {
    const Info& inf = info(static_cast<Id>(i));
    ASSERT_NE(inf.name, nullptr);
    const std::string name = inf.name;
    EXPECT_TRUE(names.insert(name).second) << "listed twice: " << name;
    ASSERT_NE(inf.doc, nullptr);
    EXPECT_GT(std::string(inf.doc).size(), 0u) << name << " has no doc";
    if (inf.external) {
      EXPECT_NE(name.rfind("XSITE_", 0), 0u) << name << " is ours, not a launcher's";
      EXPECT_EQ(inf.kind, Kind::kString) << name;
      EXPECT_STREQ(inf.defaultValue, "") << name;
    } else {
      EXPECT_EQ(name.rfind("XSITE_", 0), 0u) << name << " does not start with XSITE_";
    }
  }
  // Every default parses: constructing from an empty environment must not throw.
  EXPECT_NO_THROW(make({}));
}

}  // namespace
}  // namespace xsite::params
