// What every rank must agree on before its first collective (coll/settings.h): the signature
// carries the xsite version and wire protocol and every setting that changes the schedule or the
// bytes on the wire, and checkSameSchedule names what differs, the version first.
#include "coll/settings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coll/context.h"
#include "util/params.h"
#include "xsite/error.h"
#include "xsite/version.h"

namespace xsite::coll {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

params::Params paramsWith(std::map<std::string, std::string> env) {
  return params::Params([env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

std::string signatureWith(std::map<std::string, std::string> env) {
  const params::Params p = paramsWith(std::move(env));
  return scheduleSignature(settingsFromParams(p), linkSetupFromParams(p));
}

// The message rank 0 throws when rank 1's signature is `theirs` ("" when it does not throw).
std::string mismatch(const std::string& mine, const std::string& theirs) {
  try {
    checkSameSchedule(mine, 0, theirs, 1);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
    return e.what();
  }
  return "";
}

// The registry's bounds are the code's: a lane count it admits has a channel.
TEST(Settings, TheRegistryBoundsTheLanesByTheChannels) {
  EXPECT_EQ(params::info(params::Id::kWanLanes).min, 0);
  EXPECT_EQ(params::info(params::Id::kWanLanes).max, kMaxWanLanes);
}

TEST(ScheduleSignature, BeginsWithTheVersionAndTheWireProtocol) {
  EXPECT_THAT(signatureWith({}), StartsWith(std::string("xsite=") + XSITE_VERSION_STRING + "/" +
                                            std::to_string(kWireProtocolVersion) + " "));
  EXPECT_EQ(mismatch(signatureWith({}), signatureWith({})), "");
}

// Each setting that changes the bytes on the wire, with the effective value it is named by.
TEST(ScheduleSignature, NamesEveryWireSettingThatDiffers) {
  const std::string base = signatureWith({});
  const std::vector<std::pair<std::string, std::string>> changes = {
      {"XSITE_WAN_STREAMS", "2"},     {"XSITE_WAN_FRAME_SIZE", "256K"},
      {"XSITE_WAN_TRANSPORT", "tcp"}, {"XSITE_DOMAIN_TRANSPORT", "tcp"},
      {"XSITE_CHUNK_SIZE", "1M"},     {"XSITE_CODEC", "lz4"},
  };
  const std::map<std::string, std::pair<std::string, std::string>> named = {
      {"XSITE_WAN_STREAMS", {"2", "4"}},
      {"XSITE_WAN_FRAME_SIZE", {"262144", "65536"}},
      {"XSITE_WAN_TRANSPORT", {"tcp", "streams"}},
      {"XSITE_DOMAIN_TRANSPORT", {"tcp", "shm"}},
      {"XSITE_CHUNK_SIZE", {"1048576", "4194304"}},
      {"XSITE_CODEC", {"lz4", "none"}},
  };
  for (const auto& [var, value] : changes) {
    SCOPED_TRACE(var + "=" + value);
    const auto& [theirs, mine] = named.at(var);
    EXPECT_THAT(mismatch(base, signatureWith({{var, value}})),
                HasSubstr("rank 1 runs with " + var + "=" + theirs + " where rank 0 has " + var +
                          "=" + mine + " (set or config)"));
  }
}

// The site transport is named as it resolves: `auto` is ucx in a build with UCX, else tcp.
TEST(ScheduleSignature, SiteTransportAsResolved) {
  const bool haveUcx = transport::backendBuilt(transport::Backend::kUcx);
  const std::string autoSig = signatureWith({});
  const std::string tcp = signatureWith({{"XSITE_SITE_TRANSPORT", "tcp"}});
  EXPECT_THAT(autoSig,
              HasSubstr(haveUcx ? " XSITE_SITE_TRANSPORT=ucx" : " XSITE_SITE_TRANSPORT=tcp"));
  if (!haveUcx) {
    EXPECT_EQ(autoSig, tcp);  // the same links: nothing to refuse
    return;
  }
  EXPECT_EQ(autoSig, signatureWith({{"XSITE_SITE_TRANSPORT", "ucx"}}));
  EXPECT_THAT(mismatch(autoSig, tcp),
              HasSubstr("XSITE_SITE_TRANSPORT=tcp where rank 0 has XSITE_SITE_TRANSPORT=ucx"));
}

TEST(CheckSameSchedule, AnotherVersionIsNamedFirst) {
  const std::string mine = signatureWith({});
  // Rank 1 runs another build, whose settings differ too: the version is what it is told.
  std::string theirs = "xsite=0.4.0/3" + mine.substr(mine.find(' '));
  theirs.replace(theirs.find("XSITE_WAN_STREAMS=4"), 19, "XSITE_WAN_STREAMS=8");
  EXPECT_THAT(
      mismatch(mine, theirs),
      HasSubstr(std::string("rank 1 runs xsite 0.4.0 (wire protocol 3) where rank 0 runs "
                            "xsite ") +
                XSITE_VERSION_STRING + " (wire protocol " + std::to_string(kWireProtocolVersion) +
                "): every rank must run the same xsite version"));
  // The same version with another wire protocol (a build from between two releases).
  const std::string wire = "xsite=" XSITE_VERSION_STRING "/99" + mine.substr(mine.find(' '));
  EXPECT_THAT(mismatch(mine, wire), HasSubstr("(wire protocol 99) where rank 0 runs"));
  // A build from before the version was part of the signature.
  EXPECT_THAT(mismatch(mine, mine.substr(mine.find(' ') + 1)),
              HasSubstr("rank 1 runs an xsite of another version (its settings begin "
                        "'XSITE_CHUNK_SIZE="));
}

}  // namespace
}  // namespace xsite::coll
