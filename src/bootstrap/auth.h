// Who may talk to a job: every connection to a listener of the job (the rendezvous store, the
// data listeners, the WAN listener's re-dials, the NCCL plugin's listeners) starts with a mutual
// challenge-response keyed by the job's secret (HMAC-SHA256, OpenSSL's libcrypto):
//
//   listener -> caller  AuthChallenge  magic, version, the listener's fresh nonce
//   caller -> listener  AuthResponse   the caller's fresh nonce, HMAC(secret, caller | both nonces)
//   listener -> caller  AuthProof      HMAC(secret, listener | both nonces)
//
// Only then does the caller send its hello. Fresh nonces on both sides make a recorded exchange
// worthless (no replay), and the proof tells the caller it reached the job, not an impostor.
// Without a secret the key is empty: the exchange still runs (the wire is the same) but anyone
// can answer it, and xsite warns once that it runs unauthenticated.
#pragma once

#include <poll.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "util/params.h"
#include "util/socket.h"
#include "util/status.h"

namespace xsite::bootstrap {

struct AuthChallenge {
  static constexpr uint32_t kMagic = 0x58534131;  // "XSA1"
  static constexpr uint32_t kVersion = 1;
  uint32_t magic;
  uint32_t version;
  uint8_t nonce[16];
};
static_assert(sizeof(AuthChallenge) == 24);
struct AuthResponse {
  uint8_t nonce[16];
  uint8_t mac[32];
};
static_assert(sizeof(AuthResponse) == 48);
struct AuthProof {
  uint8_t mac[32];
};
static_assert(sizeof(AuthProof) == 32);

class JobSecret {
 public:
  JobSecret() = default;  // none: unauthenticated
  explicit JobSecret(std::string key) : key_(std::move(key)) {}
  // XSITE_JOB_SECRET, or the first line of the file XSITE_JOB_SECRET_FILE names (at least 16
  // bytes either way); warns once when neither is set. Throws kInvalidUsage on a bad setting.
  static JobSecret fromParams(const params::Params& p);
  bool empty() const noexcept { return key_.empty(); }

  AuthChallenge challenge() const;
  // The caller's side: checks the challenge and answers it. kRemote naming `who` if the
  // challenge is not one (not an xsite listener of this version).
  Status respond(const AuthChallenge& c, AuthResponse& out, const std::string& who) const;
  // The listener's side: true, with the proof to send, when the response proves the secret.
  bool checkResponse(const AuthChallenge& c, const AuthResponse& r, AuthProof& out) const;
  // The caller's side: the listener proved the secret too.
  // (Two names, not two overloads: a non-const proof would pick the listener's and pass.)
  bool checkProof(const AuthChallenge& c, const AuthResponse& r, const AuthProof& p) const;
  // A key for another purpose (e.g. the WAN streams' TLS pre-shared key), HMAC(secret, purpose):
  // knowing it reveals nothing of the secret or of keys for other purposes.
  std::array<uint8_t, 32> derive(const std::string& purpose) const;

 private:
  std::array<uint8_t, 32> mac(char role, const AuthChallenge& c, const uint8_t* callerNonce) const;
  std::array<uint8_t, 32> hmac(const void* msg, size_t bytes) const;
  std::string key_;
};

using Deadline = std::chrono::steady_clock::time_point;

// Blocking forms for set-up sockets, each bounded by `deadline`. `who` names the other end in
// errors ("rendezvous store at 10.0.0.1:29501", "rank 3").
Status authenticateToListener(int fd, const JobSecret& secret, Deadline deadline,
                              const std::string& who);
Status authenticateCaller(int fd, const JobSecret& secret, Deadline deadline,
                          const std::string& who);

// The listener's side on a non-blocking socket, for poll-driven servers: start() sends the
// challenge (a fresh socket always has room for it); step() reads what has arrived and, once
// the response is whole, checks it and sends the proof.
class AuthAccept {
 public:
  // kClosed: the caller hung up (or its socket failed) before answering; kRefused: its answer
  // does not prove the secret, or the proof could not be sent.
  enum class State { kWaiting, kAccepted, kRefused, kClosed };
  explicit AuthAccept(const JobSecret& secret) : secret_(&secret), challenge_(secret.challenge()) {}
  bool start(int fd) noexcept;
  State step(int fd) noexcept;

 private:
  const JobSecret* secret_;
  AuthChallenge challenge_;
  AuthResponse response_{};
  size_t got_ = 0;
};

// A listener's callers, whole, for servers that must not block on one of them (the data
// listeners, the WAN listener that takes re-dialed streams, the NCCL plugin's listeners): takes
// every connection a non-blocking listening socket has queued, has each prove the job's secret
// (AuthAccept) and then send a hello of `helloBytes`, within `limit`, and holds at most
// `maxCallers` (the oldest goes for a new one, so silent connections cannot block start-up).
class AuthListener {
 public:
  enum class Drop { kRefused, kClosed, kSilent };  // no proof; hung up; no hello within the limit
  struct Caller {
    Fd fd;
    std::string peer;         // its address, for logs
    std::vector<char> hello;  // whole once it is returned by poll()
  };
  AuthListener(const JobSecret& secret, size_t helloBytes, std::chrono::milliseconds limit,
               size_t maxCallers);
  // Accepts what `listenFd` has queued (each listener a server has, in turn) and moves every
  // caller on. Returns the callers whose hello is whole; `dropped` hears of the ones let go.
  using DropFn = std::function<void(Drop, const std::string& peer)>;
  Result<std::vector<Caller>> poll(int listenFd, const DropFn& dropped);
  // The callers' sockets, for a server that sleeps in poll() (POLLIN).
  void appendPollFds(std::vector<pollfd>& out) const;

 private:
  struct Pending {
    Caller caller;
    AuthAccept auth;
    bool authed = false;
    size_t got = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  const JobSecret* secret_;
  size_t helloBytes_;
  std::chrono::milliseconds limit_;
  size_t maxCallers_;
  std::deque<Pending> pending_;
};

// The caller's side on a non-blocking socket, for connects that must not block (the NCCL
// plugin's, a WAN stream's re-dial): step() reads the challenge, answers it with the caller's
// hello right behind the response (one write as far as the socket takes it), then reads the
// listener's proof and the reply that follows it (`replyBytes`, 0: none).
class AuthDial {
 public:
  // kClosed: the listener hung up (or the socket failed); after the response (answered()) that
  // is how a listener refuses a different secret (secretMismatch). kFailed: error() says why
  // (not an xsite listener of this version, or its proof is wrong).
  enum class State { kWaiting, kProved, kClosed, kFailed };
  AuthDial(const JobSecret& secret, std::string who, const void* hello, size_t helloBytes,
           size_t replyBytes = 0);
  State step(int fd) noexcept;
  bool answered() const noexcept { return answered_; }
  const Status& error() const noexcept { return error_; }
  const char* reply() const noexcept { return in_.data() + sizeof(AuthProof); }

 private:
  const JobSecret* secret_;
  std::string who_;
  AuthChallenge challenge_{};
  size_t challengeGot_ = 0;
  std::vector<char> out_;  // the response, then the hello
  size_t sent_ = 0;
  bool answered_ = false;
  std::vector<char> in_;   // the proof, then the reply
  size_t inGot_ = 0;
  Status error_;
};

// The message a caller gets when the listener hangs up on its response.
std::string secretMismatch(const std::string& who);

}  // namespace xsite::bootstrap
