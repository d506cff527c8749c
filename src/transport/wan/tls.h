// TLS on WAN streams (XSITE_WAN_TLS): TLS 1.3 by OpenSSL's libssl, keyed by the job's secret.
//
// Both ends derive the same pre-shared key from the secret (JobSecret::derive), so a stream
// needs no certificates: only a holder of the secret can complete the handshake, and the (EC)DHE
// exchange TLS 1.3 runs with a PSK gives each stream its own keys and forward secrecy. No
// session tickets, no renegotiation: a stream that breaks runs a fresh handshake on its new socket.
//
// A TlsStream sits between a WanLink's stream and its socket. It never blocks and owns every
// byte it took: OpenSSL writes into and reads from memory buffers, and this class moves them to
// and from the socket, so a send is never "retried with the same arguments" as SSL_write wants.
// The send side (send, flush, outPending) and the receive side (recv, inBuffered) may run on
// two threads, as a WanLink's do; the SSL object between them is guarded by a mutex of its own.
#pragma once

#include <sys/uio.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bootstrap/auth.h"
#include "util/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace xsite::transport::wan {

class TlsStream;

// One per job and process: the key and OpenSSL's context. Throws kInvalidUsage without a secret
// (a key anyone can derive would protect nothing).
class TlsContext {
 public:
  explicit TlsContext(const bootstrap::JobSecret& secret);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  // `client`: this side starts the handshake (it dialed the socket). `who` names the peer in errors.
  std::unique_ptr<TlsStream> open(bool client, std::string who) const;

 private:
  friend class TlsStream;
  friend struct TlsKeyAccess;
  SSL_CTX* ctx_ = nullptr;
  std::array<uint8_t, 32> key_{};
};

class TlsStream {
 public:
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Moves the handshake on as far as the socket allows: true once done (the stream carries data
  // from then on), false while it waits for the peer, an error naming the peer when the
  // handshake failed (a wrong secret, a peer without TLS, garbage).
  Result<bool> handshake(int fd) noexcept;
  // What arrived failed TLS (a handshake in another key or none, a record that does not
  // authenticate), not the socket: a new socket would not help.
  bool rejected() const noexcept { return rejected_; }
  // Like socketSend: takes up to the given bytes (0: no room now) once earlier ones left for
  // the socket, encrypts them and writes what the socket takes; the rest goes out with flush().
  Result<size_t> send(int fd, const iovec* iov, int iovcnt) noexcept;
  Status flush(int fd) noexcept;
  bool outPending() const noexcept { return outPos_ < out_.size(); }
  // Like socketRecv: decrypted bytes, 0 when none are available without blocking, an error when
  // the socket closed, failed or carried a record that does not decrypt.
  Result<size_t> recv(int fd, void* data, size_t bytes) noexcept;
  // Bytes read from the socket but not yet returned by recv() (poll() cannot see them).
  bool inBuffered() const noexcept;

 private:
  friend class TlsContext;
  TlsStream(const TlsContext& ctx, bool client, std::string who);
  Status failure(const char* what) const;  // OpenSSL's error queue, named
  void takeOutput();                      // ciphertext OpenSSL wrote -> out_ (mu_ held)
  // Reads ciphertext from the socket into OpenSSL: its size, 0 if none, an error if closed.
  Result<size_t> fill(int fd) noexcept;

  std::string who_;
  mutable std::mutex mu_;  // the SSL object and its memory BIOs
  SSL* ssl_ = nullptr;
  std::vector<char> out_;  // ciphertext for the socket (send side)
  size_t outPos_ = 0;
  std::vector<char> in_;   // a socket read's buffer (receive side)
  bool rejected_ = false;
};

}  // namespace xsite::transport::wan
