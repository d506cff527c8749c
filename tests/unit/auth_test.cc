// The job secret (bootstrap/auth.h): the challenge-response itself, its settings, and the store
// refusing a client that cannot prove the secret while it keeps serving those that can.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "bootstrap/auth.h"
#include "bootstrap/store.h"

namespace xsite::bootstrap {
namespace {

using Clock = std::chrono::steady_clock;

params::Params paramsWith(std::map<std::string, std::string> env) {
  return params::Params([env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

const JobSecret kSecret("a-secret-of-this-job-0123456789");
const JobSecret kOther("a-secret-of-another-job-9876543");

TEST(JobSecret, TheSameSecretPassesBothWays) {
  const AuthChallenge c = kSecret.challenge();
  AuthResponse r{};
  ASSERT_TRUE(kSecret.respond(c, r, "test").isOk());
  AuthProof p{};
  ASSERT_TRUE(kSecret.check(c, r, p));
  EXPECT_TRUE(kSecret.check(c, r, static_cast<const AuthProof&>(p)));
}

TEST(JobSecret, AnotherSecretFailsEitherWay) {
  const AuthChallenge c = kSecret.challenge();
  AuthResponse r{};
  ASSERT_TRUE(kOther.respond(c, r, "test").isOk());
  AuthProof p{};
  EXPECT_FALSE(kSecret.check(c, r, p));  // the listener refuses a stranger
  // An impostor listener cannot prove the secret: neither with a proof of its own key, nor by
  // replaying a proof it saw for another exchange.
  ASSERT_TRUE(kSecret.respond(c, r, "test").isOk());
  AuthResponse theirs{};
  ASSERT_TRUE(kOther.respond(c, theirs, "test").isOk());
  AuthProof own{};
  ASSERT_TRUE(kOther.check(c, theirs, own));
  EXPECT_FALSE(kSecret.check(c, r, static_cast<const AuthProof&>(own)));
  AuthResponse earlier{};
  ASSERT_TRUE(kSecret.respond(c, earlier, "test").isOk());
  AuthProof seen{};
  ASSERT_TRUE(kSecret.check(c, earlier, seen));
  EXPECT_FALSE(kSecret.check(c, r, static_cast<const AuthProof&>(seen)));
}

TEST(JobSecret, ARecordedResponseIsWorthlessAgainstANewChallenge) {
  const AuthChallenge first = kSecret.challenge(), second = kSecret.challenge();
  AuthResponse r{};
  ASSERT_TRUE(kSecret.respond(first, r, "test").isOk());
  AuthProof p{};
  EXPECT_FALSE(kSecret.check(second, r, p));
}

TEST(JobSecret, ANonXsiteChallengeIsNamed) {
  AuthChallenge c = kSecret.challenge();
  c.magic = 0x12345678;
  AuthResponse r{};
  const Status s = kSecret.respond(c, r, "the store at 10.0.0.1:1");
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("the store at 10.0.0.1:1"), std::string::npos) << s.message();
}

TEST(JobSecret, SettingsAreChecked) {
  EXPECT_TRUE(JobSecret::fromParams(paramsWith({})).empty());
  EXPECT_FALSE(JobSecret::fromParams(paramsWith({{"XSITE_JOB_SECRET", "0123456789abcdef"}})).empty());
  try {
    JobSecret::fromParams(paramsWith({{"XSITE_JOB_SECRET", "short"}}));
    FAIL() << "a 5-byte secret was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(JobSecret::fromParams(paramsWith({{"XSITE_JOB_SECRET", "0123456789abcdef"},
                                                 {"XSITE_JOB_SECRET_FILE", "/nonexistent"}})),
               Error);
  EXPECT_THROW(JobSecret::fromParams(paramsWith({{"XSITE_JOB_SECRET_FILE", "/nonexistent"}})), Error);
  char path[] = "/tmp/xsite-secret-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string line = "0123456789abcdef0123\nignored\n";
  ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  close(fd);
  const JobSecret fromFile = JobSecret::fromParams(paramsWith({{"XSITE_JOB_SECRET_FILE", path}}));
  const JobSecret direct("0123456789abcdef0123");
  const AuthChallenge c = direct.challenge();
  AuthResponse r{};
  ASSERT_TRUE(fromFile.respond(c, r, "test").isOk());
  AuthProof p{};
  EXPECT_TRUE(direct.check(c, r, p));
  unlink(path);
}

TEST(JobSecret, TheStoreRefusesAStrangerAndServesTheJob) {
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), StoreLimits{}, kSecret);
  try {
    TcpStore stranger(server.address(), std::chrono::seconds(5), kOther);
    FAIL() << "a client with another secret was served";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRemote);
    EXPECT_NE(std::string(e.what()).find("XSITE_JOB_SECRET"), std::string::npos) << e.what();
  }
  // A client that sends requests without the handshake is not served.
  Fd raw = tcpConnect(server.address(), Clock::now() + std::chrono::seconds(2));
  const std::string request(sizeof(AuthResponse), '\x05');
  (void)!::send(raw.get(), request.data(), request.size(), MSG_NOSIGNAL);
  TcpStore member(server.address(), std::chrono::seconds(5), kSecret);
  member.set("key", "value");
  std::vector<std::string> out;
  ASSERT_TRUE(member.waitFor({"key"}, std::chrono::seconds(2), out));
  EXPECT_EQ(out.at(0), "value");
  char buf[64];
  ssize_t n;
  size_t total = 0;  // the challenge (24 bytes), then nothing but the close
  while ((n = ::recv(raw.get(), buf, sizeof(buf), 0)) > 0) total += static_cast<size_t>(n);
  EXPECT_EQ(total, sizeof(AuthChallenge));
}

}  // namespace
}  // namespace xsite::bootstrap
