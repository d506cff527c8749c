#include "transport/wan/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "transport/transport.h"
#include "util/log.h"
#include "util/socket.h"

namespace xsite::transport::wan {

namespace {

constexpr const char kPskIdentity[] = "xsite-job";
constexpr const char kPskPurpose[] = "xsite WAN TLS 1.3 pre-shared key v1";
// TLS_AES_128_GCM_SHA256, the suite every TLS 1.3 stack implements (and AES-NI runs fast).
constexpr unsigned char kSuite[2] = {0x13, 0x01};
constexpr size_t kMaxPlainPerSend = 256 << 10;  // bounds what waits in out_ for the socket
constexpr size_t kReadBytes = 64 << 10;

// The session both sides build from the pre-shared key (RFC 8446 external PSK).
SSL_SESSION* pskSession(SSL* ssl, const std::array<uint8_t, 32>& key) {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kSuite);
  if (cipher == nullptr) return nullptr;
  SSL_SESSION* s = SSL_SESSION_new();
  if (s == nullptr) return nullptr;
  if (SSL_SESSION_set1_master_key(s, key.data(), key.size()) != 1 ||
      SSL_SESSION_set_cipher(s, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

const TlsContext* contextOf(SSL* ssl) {
  return static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

std::string openSslErrors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "no detail from OpenSSL" : text;
}

}  // namespace

// The key, for the PSK callbacks (which get the SSL object only).
struct TlsKeyAccess {
  static const std::array<uint8_t, 32>& key(const TlsContext& c) { return c.key_; }
};

namespace {

int useSession(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idlen,
               SSL_SESSION** sess) {
  *sess = nullptr;
  SSL_SESSION* s = pskSession(ssl, TlsKeyAccess::key(*contextOf(ssl)));
  if (s == nullptr) return 0;
  if (md != nullptr && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
    SSL_SESSION_free(s);  // a second call (after a HelloRetryRequest) for another hash
    return 1;
  }
  *id = reinterpret_cast<const unsigned char*>(kPskIdentity);
  *idlen = sizeof(kPskIdentity) - 1;
  *sess = s;
  return 1;
}

int findSession(SSL* ssl, const unsigned char* id, size_t idlen, SSL_SESSION** sess) {
  *sess = nullptr;
  if (idlen != sizeof(kPskIdentity) - 1 || memcmp(id, kPskIdentity, idlen) != 0)
    return 1;  // not ours: the handshake fails for want of a key
  *sess = pskSession(ssl, TlsKeyAccess::key(*contextOf(ssl)));
  return *sess != nullptr ? 1 : 0;
}

}  // namespace

TlsContext::TlsContext(const bootstrap::JobSecret& secret) {
  if (secret.empty())
    throw Error(ErrorCategory::kInvalidUsage,
                "XSITE_WAN_TLS=1 needs the job's secret (XSITE_JOB_SECRET or XSITE_JOB_SECRET_FILE; "
                "xsite-run makes one): it keys the streams' TLS");
  key_ = secret.derive(kPskPurpose);
  ctx_ = SSL_CTX_new(TLS_method());
  if (ctx_ == nullptr ||
      SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256") != 1 ||
      SSL_CTX_set_num_tickets(ctx_, 0) != 1) {
    const std::string why = openSslErrors();
    SSL_CTX_free(ctx_);
    throw Error(ErrorCategory::kSystem, "OpenSSL could not set up TLS 1.3 for WAN streams: " + why);
  }
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_app_data(ctx_, this);
  SSL_CTX_set_psk_use_session_callback(ctx_, useSession);
  SSL_CTX_set_psk_find_session_callback(ctx_, findSession);
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsStream> TlsContext::open(bool client, std::string who) const {
  return std::unique_ptr<TlsStream>(new TlsStream(*this, client, std::move(who)));
}

TlsStream::TlsStream(const TlsContext& ctx, bool client, std::string who) : who_(std::move(who)) {
  ssl_ = SSL_new(ctx.ctx_);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl_);
    throw Error(ErrorCategory::kSystem, "OpenSSL could not make a TLS stream: " + openSslErrors());
  }
  BIO_set_mem_eof_return(rbio, -1);  // an empty read buffer means "wait", not end of stream
  SSL_set_bio(ssl_, rbio, wbio);
  if (client)
    SSL_set_connect_state(ssl_);
  else
    SSL_set_accept_state(ssl_);
  in_.resize(kReadBytes);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

Status TlsStream::failure(const char* what) const {
  return Status(ErrorCategory::kRemote, who_ + ": TLS " + what + " failed (" + openSslErrors() +
                                            "): does the peer run with XSITE_WAN_TLS=1 and the "
                                            "job's secret?");
}

void TlsStream::takeOutput() {
  BIO* wbio = SSL_get_wbio(ssl_);
  const size_t pending = BIO_ctrl_pending(wbio);
  if (pending == 0) return;
  if (outPos_ == out_.size()) {
    out_.clear();
    outPos_ = 0;
  }
  const size_t at = out_.size();
  out_.resize(at + pending);
  const int got = BIO_read(wbio, out_.data() + at, static_cast<int>(pending));
  out_.resize(at + static_cast<size_t>(std::max(got, 0)));
}

Status TlsStream::flush(int fd) noexcept {
  {
    std::lock_guard<std::mutex> lk(mu_);
    takeOutput();
  }
  while (outPos_ < out_.size()) {
    iovec iov{out_.data() + outPos_, out_.size() - outPos_};
    Result<size_t> w = socketSend(who_, fd, &iov, 1);
    if (!w) return w.status();
    if (w.value() == 0) break;
    outPos_ += w.value();
  }
  return Status::ok();
}

Result<size_t> TlsStream::fill(int fd) noexcept {
  Result<size_t> r = socketRecv(who_, fd, in_.data(), in_.size());
  if (!r || r.value() == 0) return r;
  std::lock_guard<std::mutex> lk(mu_);
  BIO_write(SSL_get_rbio(ssl_), in_.data(), static_cast<int>(r.value()));
  return r;
}

Result<bool> TlsStream::handshake(int fd) noexcept {
  while (true) {
    int err;
    Status refused;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ERR_clear_error();
      const int rc = SSL_do_handshake(ssl_);
      err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        rejected_ = true;
        refused = failure("handshake");
      }
    }
    const Status sent = flush(fd);  // with a refusal: the alert that tells the peer why
    if (!refused.isOk()) return refused;
    XSITE_RETURN_IF_ERROR(sent);
    if (err == SSL_ERROR_NONE) return true;
    if (err == SSL_ERROR_WANT_WRITE) continue;  // memory BIOs: cannot happen, be safe anyway
    Result<size_t> got = fill(fd);
    if (!got) {
      return Status(got.status().category(),
                    got.status().message() + " (during the TLS handshake: does the peer run with "
                                             "XSITE_WAN_TLS=1?)");
    }
    if (got.value() == 0) return false;
  }
}

Result<size_t> TlsStream::send(int fd, const iovec* iov, int iovcnt) noexcept {
  XSITE_RETURN_IF_ERROR(flush(fd));
  if (outPending()) return size_t{0};  // the socket is full: take nothing new
  size_t taken = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (int i = 0; i < iovcnt && taken < kMaxPlainPerSend; ++i) {
      const size_t n = std::min(iov[i].iov_len, kMaxPlainPerSend - taken);
      if (n == 0) continue;
      size_t written = 0;
      ERR_clear_error();
      if (SSL_write_ex(ssl_, iov[i].iov_base, n, &written) != 1 || written != n)
        return failure("encryption");
      taken += n;
    }
    takeOutput();
  }
  XSITE_RETURN_IF_ERROR(flush(fd));
  return taken;
}

Result<size_t> TlsStream::recv(int fd, void* data, size_t bytes) noexcept {
  while (true) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      size_t got = 0;
      ERR_clear_error();
      const int rc = SSL_read_ex(ssl_, data, bytes, &got);
      if (rc == 1) return got;
      const int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_ZERO_RETURN)
        return Status(ErrorCategory::kRemote, who_ + ": closed the TLS session");
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        rejected_ = true;
        return failure("decryption");
      }  // a record that does not authenticate: tampered or garbage
    }
    Result<size_t> got = fill(fd);
    if (!got || got.value() == 0) return got;
  }
}

bool TlsStream::inBuffered() const noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl_)) > 0;
}

}  // namespace xsite::transport::wan
