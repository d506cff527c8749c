#include "bootstrap/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>

#include "util/log.h"
#include "util/socket.h"

namespace xsite::bootstrap {
namespace {

constexpr size_t kMinSecretBytes = 16;

void randomBytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1)
    throw Error(ErrorCategory::kSystem, "OpenSSL's RAND_bytes failed: no randomness for a nonce");
}

}  // namespace

JobSecret JobSecret::fromParams(const params::Params& p) {
  using params::Id;
  std::string key = p.string(Id::kJobSecret);
  const std::string& file = p.string(Id::kJobSecretFile);
  if (!key.empty() && !file.empty())
    throw Error(ErrorCategory::kInvalidUsage,
                "XSITE_JOB_SECRET and XSITE_JOB_SECRET_FILE are both set: set one");
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in || !std::getline(in, key))
      throw Error(ErrorCategory::kInvalidUsage,
                  "XSITE_JOB_SECRET_FILE=" + file + ": cannot read its first line");
  }
  if (!key.empty() && key.size() < kMinSecretBytes)
    throw Error(ErrorCategory::kInvalidUsage,
                std::string(file.empty() ? "XSITE_JOB_SECRET" : "XSITE_JOB_SECRET_FILE") +
                    " holds " + std::to_string(key.size()) + " bytes; a secret needs at least " +
                    std::to_string(kMinSecretBytes) + " (xsite-run makes one per job)");
  if (key.empty()) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      XSITE_WARN(kBootstrap,
                 "no XSITE_JOB_SECRET (or XSITE_JOB_SECRET_FILE): this job runs unauthenticated; "
                 "anyone who reaches its ports can join it (docs/reliability.md)");
    });
  }
  return JobSecret(std::move(key));
}

AuthChallenge JobSecret::challenge() const {
  AuthChallenge c{};
  c.magic = AuthChallenge::kMagic;
  c.version = AuthChallenge::kVersion;
  randomBytes(c.nonce, sizeof(c.nonce));
  return c;
}

std::array<uint8_t, 32> JobSecret::hmac(const void* msg, size_t bytes) const {
  std::array<uint8_t, 32> out{};
  unsigned len = 0;
  static const uint8_t kNoKey = 0;
  const void* key = key_.empty() ? static_cast<const void*>(&kNoKey) : key_.data();
  if (HMAC(EVP_sha256(), key, static_cast<int>(key_.size()), static_cast<const uint8_t*>(msg),
           bytes, out.data(), &len) == nullptr ||
      len != out.size())
    throw Error(ErrorCategory::kSystem, "OpenSSL's HMAC-SHA256 failed");
  return out;
}

std::array<uint8_t, 32> JobSecret::mac(char role, const AuthChallenge& c,
                                       const uint8_t* callerNonce) const {
  uint8_t msg[1 + 16 + 16];
  msg[0] = static_cast<uint8_t>(role);
  memcpy(msg + 1, c.nonce, 16);
  memcpy(msg + 17, callerNonce, 16);
  return hmac(msg, sizeof(msg));
}

std::array<uint8_t, 32> JobSecret::derive(const std::string& purpose) const {
  return hmac(purpose.data(), purpose.size());
}

Status JobSecret::respond(const AuthChallenge& c, AuthResponse& out, const std::string& who) const {
  if (c.magic != AuthChallenge::kMagic || c.version != AuthChallenge::kVersion)
    return Status(ErrorCategory::kRemote,
                  who + " did not open with xsite's challenge (not an xsite listener, or another "
                        "version of xsite)");
  try {
    randomBytes(out.nonce, sizeof(out.nonce));
    const auto m = mac('C', c, out.nonce);
    memcpy(out.mac, m.data(), m.size());
  } catch (const Error& e) {
    return Status(e.category(), e.message());
  }
  return Status::ok();
}

bool JobSecret::checkResponse(const AuthChallenge& c, const AuthResponse& r, AuthProof& out) const {
  try {
    const auto want = mac('C', c, r.nonce);
    if (CRYPTO_memcmp(want.data(), r.mac, want.size()) != 0) return false;
    const auto proof = mac('L', c, r.nonce);
    memcpy(out.mac, proof.data(), proof.size());
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool JobSecret::checkProof(const AuthChallenge& c, const AuthResponse& r,
                           const AuthProof& p) const {
  try {
    const auto want = mac('L', c, r.nonce);
    return CRYPTO_memcmp(want.data(), p.mac, want.size()) == 0;
  } catch (const Error&) {
    return false;
  }
}

std::string secretMismatch(const std::string& who) {
  return who + " refused this rank's proof of the job's secret: is XSITE_JOB_SECRET (or "
               "XSITE_JOB_SECRET_FILE) the same on every rank?";
}

Status authenticateToListener(int fd, const JobSecret& secret, Deadline deadline,
                              const std::string& who) {
  AuthChallenge c{};
  Status s = readAll(fd, &c, sizeof(c), deadline);
  if (!s) return Status(s.category(), who + ": waiting for its challenge: " + s.message());
  AuthResponse r{};
  XSITE_RETURN_IF_ERROR(secret.respond(c, r, who));
  s = writeAll(fd, &r, sizeof(r), deadline);
  AuthProof p{};
  if (s) s = readAll(fd, &p, sizeof(p), deadline);
  if (!s) {
    if (s.category() == ErrorCategory::kRemote)
      return Status(ErrorCategory::kRemote, secretMismatch(who));
    return Status(s.category(), who + ": authenticating: " + s.message());
  }
  if (!secret.checkProof(c, r, p))
    return Status(ErrorCategory::kRemote,
                  who + " could not prove it knows the job's secret: is it a rank of this job, "
                        "with the same XSITE_JOB_SECRET?");
  return Status::ok();
}

Status authenticateCaller(int fd, const JobSecret& secret, Deadline deadline,
                          const std::string& who) {
  const AuthChallenge c = secret.challenge();
  Status s = writeAll(fd, &c, sizeof(c), deadline);
  AuthResponse r{};
  if (s) s = readAll(fd, &r, sizeof(r), deadline);
  if (!s) return Status(s.category(), who + ": authenticating: " + s.message());
  AuthProof p{};
  if (!secret.checkResponse(c, r, p))
    return Status(ErrorCategory::kRemote, who + " did not prove it knows the job's secret");
  return writeAll(fd, &p, sizeof(p), deadline);
}

bool AuthAccept::start(int fd) noexcept {
  return ::send(fd, &challenge_, sizeof(challenge_), MSG_NOSIGNAL | MSG_DONTWAIT) ==
         static_cast<ssize_t>(sizeof(challenge_));
}

AuthAccept::State AuthAccept::step(int fd) noexcept {
  const ReadProgress got = readToward(fd, &response_, sizeof(response_), got_);
  if (got == ReadProgress::kWaiting) return State::kWaiting;
  if (got == ReadProgress::kClosed) return State::kClosed;
  AuthProof p{};
  if (!secret_->checkResponse(challenge_, response_, p)) return State::kRefused;
  if (::send(fd, &p, sizeof(p), MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(sizeof(p)))
    return State::kRefused;
  return State::kAccepted;
}

AuthListener::AuthListener(const JobSecret& secret, size_t helloBytes,
                           std::chrono::milliseconds limit, size_t maxCallers)
    : secret_(&secret), helloBytes_(helloBytes), limit_(limit), maxCallers_(maxCallers) {}

Result<std::vector<AuthListener::Caller>> AuthListener::poll(int listenFd, const DropFn& dropped) {
  const auto now = std::chrono::steady_clock::now();
  while (true) {  // every connection the kernel has queued
    SockAddr addr;
    socklen_t len = sizeof(addr.storage);
    Fd fd(::accept4(listenFd, addr.get(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // Out of descriptors or memory: the connection stays queued, the callers here go on.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) break;
      return Status(ErrorCategory::kSystem, "accept: " + errnoString(errno));
    }
    Pending p{Caller{std::move(fd), addr.toString(), std::vector<char>(helloBytes_)},
              AuthAccept(*secret_), false, 0, now + limit_};
    if (!p.auth.start(p.caller.fd.get())) continue;
    if (pending_.size() >= maxCallers_) pending_.pop_front();  // the oldest waits no longer
    pending_.push_back(std::move(p));
  }
  std::vector<Caller> ready;
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = *it;
    const int fd = p.caller.fd.get();
    std::optional<Drop> drop;
    if (!p.authed) {
      const AuthAccept::State st = p.auth.step(fd);
      if (st == AuthAccept::State::kRefused) drop = Drop::kRefused;
      if (st == AuthAccept::State::kClosed) drop = Drop::kClosed;
      p.authed = st == AuthAccept::State::kAccepted;
    }
    if (p.authed) {
      const ReadProgress got = readToward(fd, p.caller.hello.data(), helloBytes_, p.got);
      if (got == ReadProgress::kDone) {
        ready.push_back(std::move(p.caller));
        it = pending_.erase(it);
        continue;
      }
      if (got == ReadProgress::kClosed) drop = Drop::kClosed;
    }
    if (!drop && now > p.deadline) drop = Drop::kSilent;
    if (!drop) {
      ++it;
      continue;
    }
    if (dropped) dropped(*drop, p.caller.peer);
    it = pending_.erase(it);
  }
  return ready;
}

void AuthListener::appendPollFds(std::vector<pollfd>& out) const {
  for (const Pending& p : pending_) out.push_back({p.caller.fd.get(), POLLIN, 0});
}

AuthDial::AuthDial(const JobSecret& secret, std::string who, const void* hello, size_t helloBytes,
                   size_t replyBytes)
    : secret_(&secret),
      who_(std::move(who)),
      out_(sizeof(AuthResponse) + helloBytes),
      in_(sizeof(AuthProof) + replyBytes) {
  if (helloBytes > 0) std::memcpy(out_.data() + sizeof(AuthResponse), hello, helloBytes);
}

AuthDial::State AuthDial::step(int fd) noexcept {
  if (!error_.isOk()) return State::kFailed;
  if (challengeGot_ < sizeof(challenge_)) {
    const ReadProgress got = readToward(fd, &challenge_, sizeof(challenge_), challengeGot_);
    if (got == ReadProgress::kWaiting) return State::kWaiting;
    if (got == ReadProgress::kClosed) return State::kClosed;
    AuthResponse r{};
    error_ = secret_->respond(challenge_, r, who_);
    if (!error_.isOk()) return State::kFailed;
    std::memcpy(out_.data(), &r, sizeof(r));
  }
  while (sent_ < out_.size()) {
    const ssize_t w =
        ::send(fd, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return State::kWaiting;
    if (w <= 0) return State::kClosed;
    sent_ += static_cast<size_t>(w);
  }
  answered_ = true;
  const ReadProgress got = readToward(fd, in_.data(), in_.size(), inGot_);
  if (got == ReadProgress::kWaiting) return State::kWaiting;
  if (got == ReadProgress::kClosed) return State::kClosed;
  AuthProof p{};
  AuthResponse r{};
  std::memcpy(&p, in_.data(), sizeof(p));
  std::memcpy(&r, out_.data(), sizeof(r));
  if (!secret_->checkProof(challenge_, r, p)) {
    error_ = Status(ErrorCategory::kRemote,
                    who_ + " could not prove it knows the job's secret: is it a rank of this job, "
                           "with the same XSITE_JOB_SECRET?");
    return State::kFailed;
  }
  return State::kProved;
}

}  // namespace xsite::bootstrap
