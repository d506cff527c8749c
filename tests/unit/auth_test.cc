// The job secret (bootstrap/auth.h): the challenge-response itself, its settings, and the store
// refusing a client that cannot prove the secret while it keeps serving those that can.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>

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
  ASSERT_TRUE(kSecret.checkResponse(c, r, p));
  EXPECT_TRUE(kSecret.checkProof(c, r, p));
}

TEST(JobSecret, AnotherSecretFailsEitherWay) {
  const AuthChallenge c = kSecret.challenge();
  AuthResponse r{};
  ASSERT_TRUE(kOther.respond(c, r, "test").isOk());
  AuthProof p{};
  EXPECT_FALSE(kSecret.checkResponse(c, r, p));  // the listener refuses a stranger
  // An impostor listener cannot prove the secret: neither with a proof of its own key, nor by
  // replaying a proof it saw for another exchange.
  ASSERT_TRUE(kSecret.respond(c, r, "test").isOk());
  AuthResponse theirs{};
  ASSERT_TRUE(kOther.respond(c, theirs, "test").isOk());
  AuthProof own{};
  ASSERT_TRUE(kOther.checkResponse(c, theirs, own));
  EXPECT_FALSE(kSecret.checkProof(c, r, own));
  AuthResponse earlier{};
  ASSERT_TRUE(kSecret.respond(c, earlier, "test").isOk());
  AuthProof seen{};
  ASSERT_TRUE(kSecret.checkResponse(c, earlier, seen));
  EXPECT_FALSE(kSecret.checkProof(c, r, seen));
}

TEST(JobSecret, ARecordedResponseIsWorthlessAgainstANewChallenge) {
  const AuthChallenge first = kSecret.challenge(), second = kSecret.challenge();
  AuthResponse r{};
  ASSERT_TRUE(kSecret.respond(first, r, "test").isOk());
  AuthProof p{};
  EXPECT_FALSE(kSecret.checkResponse(second, r, p));
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
  EXPECT_TRUE(direct.checkResponse(c, r, p));
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

// The caller's side without blocking, against the listener's (AuthAccept) over a socketpair:
// steps until neither moves. `replyAfterProof` is what the listener sends behind its proof.
struct DialPair {
  Fd dialer, listener;
  DialPair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    dialer = Fd(sv[0]);
    listener = Fd(sv[1]);
  }
};

AuthDial::State dialUntilDone(AuthDial& d, int fd) {
  const auto until = Clock::now() + std::chrono::seconds(5);
  AuthDial::State st;
  while ((st = d.step(fd)) == AuthDial::State::kWaiting && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return st;
}

// An impostor that speaks the protocol but does not know the secret (its proof is made up) is
// refused by a blocking caller (the store's clients, the data connections) too.
TEST(JobSecret, ACallerRefusesAListenerThatCannotProveTheSecret) {
  DialPair p;
  const AuthChallenge c = kOther.challenge();
  const AuthProof forged{};
  ASSERT_EQ(::send(p.listener.get(), &c, sizeof(c), 0), static_cast<ssize_t>(sizeof(c)));
  ASSERT_EQ(::send(p.listener.get(), &forged, sizeof(forged), 0), static_cast<ssize_t>(sizeof(forged)));
  setNonBlocking(p.dialer.get(), false);
  const Status s = authenticateToListener(p.dialer.get(), kSecret,
                                          Clock::now() + std::chrono::seconds(5), "the store at test");
  ASSERT_FALSE(s.isOk()) << "a made-up proof was taken for the secret";
  EXPECT_EQ(s.category(), ErrorCategory::kRemote);
  EXPECT_NE(s.message().find("the store at test could not prove"), std::string::npos) << s.message();
}

TEST(AuthDial, ProvesBothWaysThenCarriesTheHelloAndTheReply) {
  DialPair p;
  const std::string hello = "hello, listener";
  AuthDial dial(kSecret, "the listener at test", hello.data(), hello.size(), 4);
  AuthAccept accept(kSecret);
  ASSERT_TRUE(accept.start(p.listener.get()));
  EXPECT_EQ(dial.step(p.dialer.get()), AuthDial::State::kWaiting);  // answered, no proof yet
  EXPECT_TRUE(dial.answered());
  AuthAccept::State a;
  while ((a = accept.step(p.listener.get())) == AuthAccept::State::kWaiting) {}
  ASSERT_EQ(a, AuthAccept::State::kAccepted);
  std::string got(hello.size(), '\0');
  ASSERT_EQ(::recv(p.listener.get(), got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, hello);
  EXPECT_EQ(dial.step(p.dialer.get()), AuthDial::State::kWaiting) << "the reply is not there yet";
  ASSERT_EQ(::send(p.listener.get(), "ABCD", 4, 0), 4);
  ASSERT_EQ(dialUntilDone(dial, p.dialer.get()), AuthDial::State::kProved);
  EXPECT_EQ(std::string(dial.reply(), 4), "ABCD");
}

TEST(AuthDial, AListenerOfAnotherJobHangsUpAfterTheAnswer) {
  DialPair p;
  AuthDial dial(kSecret, "the listener at test", "x", 1);
  AuthAccept accept(kOther);
  ASSERT_TRUE(accept.start(p.listener.get()));
  (void)dial.step(p.dialer.get());
  AuthAccept::State a;
  while ((a = accept.step(p.listener.get())) == AuthAccept::State::kWaiting) {}
  EXPECT_EQ(a, AuthAccept::State::kRefused);
  p.listener.reset();  // a listener closes what it refuses
  EXPECT_EQ(dialUntilDone(dial, p.dialer.get()), AuthDial::State::kClosed);
  EXPECT_TRUE(dial.answered()) << "a hang-up after the answer is how another secret shows";
}

TEST(AuthDial, AnImpostorsProofAndAStrangersChallengeAreErrorsNamingThem) {
  {
    DialPair p;
    AuthDial dial(kSecret, "the listener at 10.0.0.9:1234", nullptr, 0);
    const AuthChallenge c = kOther.challenge();  // it knows the protocol, not the secret
    ASSERT_EQ(::send(p.listener.get(), &c, sizeof(c), 0), static_cast<ssize_t>(sizeof(c)));
    (void)dial.step(p.dialer.get());
    const AuthProof forged{};
    ASSERT_EQ(::send(p.listener.get(), &forged, sizeof(forged), 0), static_cast<ssize_t>(sizeof(forged)));
    ASSERT_EQ(dialUntilDone(dial, p.dialer.get()), AuthDial::State::kFailed);
    EXPECT_EQ(dial.error().category(), ErrorCategory::kRemote);
    EXPECT_NE(dial.error().message().find("the listener at 10.0.0.9:1234 could not prove"),
              std::string::npos) << dial.error().message();
  }
  {
    DialPair p;
    AuthDial dial(kSecret, "the listener at 10.0.0.9:1234", nullptr, 0);
    const std::string http = "HTTP/1.1 400 Bad Request\r\n\r\n";
    ASSERT_EQ(::send(p.listener.get(), http.data(), http.size(), 0), static_cast<ssize_t>(http.size()));
    ASSERT_EQ(dialUntilDone(dial, p.dialer.get()), AuthDial::State::kFailed);
    EXPECT_FALSE(dial.answered());
    EXPECT_NE(dial.error().message().find("10.0.0.9:1234"), std::string::npos) << dial.error().message();
  }
}

// The listener's side whole, over real sockets: a rank of the job (dialed without blocking) is
// handed over with its hello; a stranger and a silent connection are dropped, each named.
TEST(AuthListener, HandsOverACallerThatProvesTheSecretAndDropsTheRest) {
  Fd listener = tcpListen(sockAddrOf("127.0.0.1", 0), 16);
  setNonBlocking(listener.get(), true);
  const SockAddr at = localAddr(listener.get());
  AuthListener callers(kSecret, 8, std::chrono::milliseconds(300), 16);
  std::vector<AuthListener::Drop> drops;
  auto dropped = [&](AuthListener::Drop why, const std::string& peer) {
    EXPECT_EQ(peer.rfind("127.0.0.1:", 0), 0u) << peer;
    drops.push_back(why);
  };
  Fd good = dialStart(at), stranger = dialStart(at), silent = dialStart(at);
  for (const Fd* fd : {&good, &stranger, &silent}) {
    ASSERT_TRUE(fd->valid()) << errnoString(errno);
    pollfd p{fd->get(), POLLOUT, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    ASSERT_EQ(socketError(fd->get()), 0);
  }
  AuthDial goodDial(kSecret, "the listener", "rank 3 !", 8);
  AuthDial strangerDial(kOther, "the listener", "rank 4 !", 8);
  std::vector<AuthListener::Caller> got;
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < until && (got.empty() || drops.size() < 2)) {
    auto ready = callers.poll(listener.get(), dropped);
    ASSERT_TRUE(ready.isOk()) << ready.status().message();
    for (auto& c : ready.value()) got.push_back(std::move(c));
    (void)goodDial.step(good.get());
    (void)strangerDial.step(stranger.get());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::string(got[0].hello.begin(), got[0].hello.end()), "rank 3 !");
  EXPECT_EQ(dialUntilDone(goodDial, good.get()), AuthDial::State::kProved);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0], AuthListener::Drop::kRefused);  // the stranger, at once
  EXPECT_EQ(drops[1], AuthListener::Drop::kSilent);   // the silent one, after the limit
  EXPECT_EQ(dialUntilDone(strangerDial, stranger.get()), AuthDial::State::kClosed);
}

}  // namespace
}  // namespace xsite::bootstrap
