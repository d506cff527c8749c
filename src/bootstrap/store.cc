#include "bootstrap/store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <string_view>
#include <utility>

#include "util/log.h"

namespace xsite::bootstrap {
namespace {

using Clock = std::chrono::steady_clock;
// A client answers the job-secret challenge within this; store connections are long-lived (a
// rank keeps its own for the job): keepalive, and 5 minutes of unacknowledged data is death.
constexpr auto kAuthLimit = std::chrono::seconds(10);
constexpr auto kStoreUserTimeout = std::chrono::minutes(5);

// Wire format: every message is [u32 length][payload]; payload strings are [u32 len][bytes].
// Requests: [kSet][key][value] -> [kOk]; [kWait][u32 ms][u32 n][key]... -> [kOk][u32 n][value]...
// or, on timeout, [kMissing][u32 n][key]...; [kSetIfAbsent][key][value] -> [kOk][u32 1][value].
// Any request may be answered [kError][message] instead: the server then closes the connection.
enum Op : uint8_t { kSet = 1, kWait = 2, kSetIfAbsent = 3 };
enum Reply : uint8_t { kOk = 0, kMissing = 1, kError = 2 };

void putU32(std::string& b, uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void putStr(std::string& b, const std::string& s) {
  putU32(b, static_cast<uint32_t>(s.size()));
  b += s;
}

struct Reader {
  std::string_view b;
  size_t pos = 0;
  bool ok = true;
  uint32_t u32() {
    if (pos + 4 > b.size()) { ok = false; return 0; }
    uint32_t v;
    memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return v;
  }
  std::string str() {
    uint32_t n = u32();
    if (!ok || pos + n > b.size()) { ok = false; return {}; }
    std::string s(b.substr(pos, n));
    pos += n;
    return s;
  }
};

std::string frame(const std::string& payload) {
  std::string f;
  putU32(f, static_cast<uint32_t>(payload.size()));
  return f + payload;
}

std::string missingMessage(const std::vector<std::string>& missing, Duration timeout) {
  std::string m;
  for (size_t i = 0; i < missing.size() && i < 16; ++i) m += (i ? ", " : "") + missing[i];
  if (missing.size() > 16) m += " and " + std::to_string(missing.size() - 16) + " more";
  return "still missing after " + std::to_string(timeout.count()) + " ms: " + m;
}

}  // namespace

}  // namespace xsite::bootstrap

namespace xsite {

std::vector<std::string> Store::get(const std::vector<std::string>& keys, Duration timeout) {
  using bootstrap::missingMessage;
  std::vector<std::string> out;
  if (!waitFor(keys, timeout, out)) throw Error(ErrorCategory::kTimeout, missingMessage(out, timeout));
  return out;
}

}  // namespace xsite

namespace xsite::bootstrap {

std::vector<std::string> allGather(Store& store, const std::string& prefix, int rank, int size,
                                   const std::string& mine, Duration timeout) {
  store.set(prefix + "/" + std::to_string(rank), mine);
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(prefix + "/" + std::to_string(r));
  std::vector<std::string> out;
  if (store.waitFor(keys, timeout, out)) return out;
  std::string ranks;
  for (size_t i = 0; i < out.size(); ++i) ranks += (i ? ", " : "") + out[i].substr(prefix.size() + 1);
  char secs[32];
  snprintf(secs, sizeof(secs), "%.1f", timeout.count() / 1000.0);
  throw Error(ErrorCategory::kTimeout,
              std::string(out.size() == 1 ? "rank " : "ranks ") + ranks + " of " +
                  std::to_string(size) + " never arrived at the rendezvous '" + prefix +
                  "' within " + secs +
                  " s; check that every rank was started with the same store address and world "
                  "size (XSITE_BOOTSTRAP_TIMEOUT sets the wait)");
}

// ---- in-process -------------------------------------------------------------------------------

void InProcessStore::set(const std::string& key, const std::string& value) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    kv_[key] = value;
  }
  cv_.notify_all();
}

std::string InProcessStore::setIfAbsent(const std::string& key, const std::string& value) {
  std::string now;
  {
    std::lock_guard<std::mutex> lk(mu_);
    now = kv_.try_emplace(key, value).first->second;
  }
  cv_.notify_all();
  return now;
}

bool InProcessStore::waitFor(const std::vector<std::string>& keys, Duration timeout,
                             std::vector<std::string>& out) {
  std::unique_lock<std::mutex> lk(mu_);
  auto all = [&] {
    return std::all_of(keys.begin(), keys.end(), [&](const auto& k) { return kv_.count(k) > 0; });
  };
  bool ok = cv_.wait_for(lk, timeout, all);
  out.clear();
  for (const auto& k : keys)
    if (ok) out.push_back(kv_[k]);
    else if (!kv_.count(k)) out.push_back(k);
  return ok;
}

// ---- TCP server -------------------------------------------------------------------------------

namespace {

std::string peerOf(int fd) {
  SockAddr a;
  socklen_t n = sizeof(a.storage);
  if (::getpeername(fd, a.get(), &n) != 0) return "a client";
  return a.toString();
}

std::string errorReply(const std::string& why) {
  std::string r(1, static_cast<char>(kError));
  putStr(r, why);
  return r;
}

// Drops a buffer's memory once it held a large message, so idle clients cost little.
void release(std::string& b) noexcept {
  if (b.capacity() > (1u << 20))
    std::string().swap(b);
  else
    b.clear();
}

// The server's state, driven by TcpStoreServer::run(). Nothing here blocks: replies queue per
// client and leave as its socket takes them (POLLOUT). A client breaking a cap or the protocol is
// refused (told why when it still reads, logged, disconnected); the others carry on.
class StoreService {
 public:
  StoreService(const StoreLimits& limits, const JobSecret& secret)
      : limits_(limits), secret_(secret) {}

  bool acceptPaused(Clock::time_point now) const { return now < acceptPausedUntil_; }
  void acceptAll(int listenFd, Clock::time_point now);
  // Appends a pollfd per client; onEvents() takes their revents in the same order.
  void addPollFds(std::vector<pollfd>& pfds);
  void onEvents(const pollfd* pfds, size_t n);
  // Answers the waits that can be answered or ran out, then removes what was dropped.
  void answerWaits(Clock::time_point now);
  void reap(Clock::time_point now);
  int pollTimeoutMs(Clock::time_point now) const;

 private:
  struct Client {
    Fd fd;
    std::string peer;
    std::string in;  // request bytes from inPos on are not handled yet
    size_t inPos = 0;
    std::string out;  // reply bytes from outPos on are not sent yet
    size_t outPos = 0;
    bool waiting = false;  // a wait is pending: later requests stay in `in`, answered in order
    bool closing = false;  // refused: dropped once its error reply is out (or at closeBy)
    Clock::time_point closeBy{};
    bool authed = false;   // it proved the job's secret (bootstrap/auth.h); nothing served before
    AuthChallenge challenge{};
    Clock::time_point authBy{};
  };
  struct Waiter {
    Client* client;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };

  void receive(Client& c);
  void serve(Client& c);
  Status handle(Client& c, std::string_view request);
  Status answer(Waiter& w, bool final, bool& done);
  void queue(Client& c, const std::string& payload);
  void flush(Client& c) noexcept;
  void refuse(Client& c, const std::string& why);
  void drop(Client& c, const char* why) noexcept;
  // An exception while serving `c` (a bug, or memory): logged, and `c` is refused, not the thread.
  void fail(Client& c, const char* what) noexcept;

  bool authenticate(Client& c);
  const StoreLimits limits_;
  const JobSecret& secret_;
  std::list<Client> clients_;
  std::list<Waiter> waits_;
  std::map<std::string, std::string> kv_;
  size_t storedBytes_ = 0;
  bool changed_ = false;  // a key was set since the waits were last looked at
  std::vector<Client*> polled_;
  Clock::time_point acceptPausedUntil_{};
  bool acceptWarned_ = false;
};

void StoreService::acceptAll(int listenFd, Clock::time_point now) {
  for (int i = 0; i < 256; ++i) {  // bounded: the clients already here are served too
    const int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays in the backlog; polling the listener now would spin.
        if (!acceptWarned_)
          XSITE_WARN(kBootstrap,
                     "store: cannot accept a connection while serving %zu clients: %s (raise the "
                     "open-files limit, ulimit -n); retrying",
                     clients_.size(), errnoString(errno).c_str());
        acceptWarned_ = true;
        acceptPausedUntil_ = now + std::chrono::milliseconds(100);
      }
      return;
    }
    acceptWarned_ = false;
    Fd conn(fd);
    if (clients_.size() >= limits_.maxClients) {
      const std::string why = "the store serves at most " + std::to_string(limits_.maxClients) +
                              " clients at once (its client cap)";
      XSITE_WARN(kBootstrap, "store: refusing %s: %s", peerOf(fd).c_str(), why.c_str());
      const std::string f = frame(errorReply(why));
      (void)!::send(fd, f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL);  // best effort
      continue;
    }
    setNoDelay(fd);
    setKeepAlive(fd, kStoreUserTimeout);
    clients_.push_back(Client{});
    Client& c = clients_.back();
    c.fd = std::move(conn);
    c.peer = peerOf(fd);
    c.challenge = secret_.challenge();
    c.authBy = now + kAuthLimit;
    c.out.append(reinterpret_cast<const char*>(&c.challenge), sizeof(c.challenge));
    flush(c);
  }
}

void StoreService::addPollFds(std::vector<pollfd>& pfds) {
  polled_.clear();
  for (auto& c : clients_) {
    const bool unsent = c.outPos < c.out.size();
    const short events = static_cast<short>((c.closing ? 0 : POLLIN) | (unsent ? POLLOUT : 0));
    pfds.push_back({c.fd.get(), events, 0});
    polled_.push_back(&c);
  }
}

void StoreService::onEvents(const pollfd* pfds, size_t n) {
  for (size_t i = 0; i < n && i < polled_.size(); ++i) {
    Client& c = *polled_[i];
    const short rev = pfds[i].revents;
    if (!rev || !c.fd.valid()) continue;
    try {
      if (rev & POLLOUT) flush(c);
      if (c.fd.valid() && (rev & (POLLIN | POLLHUP | POLLERR))) receive(c);
    } catch (const std::exception& e) {
      fail(c, e.what());
    } catch (...) {
      fail(c, "unknown exception");
    }
  }
}

void StoreService::receive(Client& c) {
  char buf[65536];
  const ssize_t r = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (r <= 0) return drop(c, nullptr);  // it left (or its connection broke): nothing to say
  if (c.closing) return;                // refused: what it sends now is not read
  c.in.append(buf, static_cast<size_t>(r));
  if (c.in.size() - c.inPos > limits_.maxClientBytes + 4)  // requests sent while a wait is pending
    return refuse(c, "it sent " + std::to_string(c.in.size() - c.inPos) +
                         " bytes of requests without waiting for its replies, past the buffer "
                         "cap of " +
                         std::to_string(limits_.maxClientBytes) + " bytes per client");
  serve(c);
}

// The first bytes of a client answer the challenge sent when it connected.
bool StoreService::authenticate(Client& c) {
  if (c.in.size() - c.inPos < sizeof(AuthResponse)) return false;
  AuthResponse r;
  memcpy(&r, c.in.data() + c.inPos, sizeof(r));
  AuthProof p{};
  if (!secret_.checkResponse(c.challenge, r, p)) {
    drop(c, "it did not prove it knows the job's secret (XSITE_JOB_SECRET)");
    return false;
  }
  c.inPos += sizeof(r);
  c.authed = true;
  c.out.append(reinterpret_cast<const char*>(&p), sizeof(p));
  flush(c);
  return true;
}

// Handles the whole requests in `c.in`, in order, until one has to wait.
void StoreService::serve(Client& c) {
  if (!c.authed && !authenticate(c)) return;
  while (c.fd.valid() && !c.closing && !c.waiting && c.in.size() - c.inPos >= 4) {
    uint32_t len;
    memcpy(&len, c.in.data() + c.inPos, 4);
    if (len > limits_.maxClientBytes)
      return refuse(c, "a request of " + std::to_string(len) + " bytes is past the buffer cap of " +
                           std::to_string(limits_.maxClientBytes) + " bytes per client");
    if (c.in.size() - c.inPos - 4 < len) break;
    const Status s = handle(c, std::string_view(c.in).substr(c.inPos + 4, len));
    c.inPos += 4 + size_t{len};
    if (!s) return refuse(c, s.message());
  }
  if (c.inPos == c.in.size()) {
    release(c.in);
    c.inPos = 0;
  } else if (c.inPos > c.in.size() / 2) {
    c.in.erase(0, c.inPos);
    c.inPos = 0;
  }
}

Status StoreService::handle(Client& c, std::string_view request) {
  const Status garbled(ErrorCategory::kRemote, "a malformed request (not an xsite store client?)");
  if (request.empty()) return garbled;
  Reader rd{request};
  rd.pos = 1;
  const auto op = static_cast<uint8_t>(request[0]);
  if (op == kSet || op == kSetIfAbsent) {
    std::string k = rd.str(), v = rd.str();
    if (!rd.ok) return garbled;
    auto it = kv_.find(k);
    std::string reply(1, static_cast<char>(kOk));
    if (op == kSetIfAbsent) putU32(reply, 1);
    if (op == kSetIfAbsent && it != kv_.end()) {
      putStr(reply, it->second);
      queue(c, reply);
      return Status::ok();
    }
    const size_t held =
        storedBytes_ - (it == kv_.end() ? 0 : k.size() + it->second.size()) + k.size() + v.size();
    if (held > limits_.maxStoredBytes)
      return Status(ErrorCategory::kInvalidUsage,
                    "setting '" + k.substr(0, 64) + "' (" + std::to_string(v.size()) +
                        " bytes) would make the store hold " + std::to_string(held) +
                        " bytes, past its stored-bytes cap of " +
                        std::to_string(limits_.maxStoredBytes));
    storedBytes_ = held;
    if (op == kSetIfAbsent) putStr(reply, v);
    kv_.insert_or_assign(std::move(k), std::move(v));
    changed_ = true;
    queue(c, reply);
    return Status::ok();
  }
  if (op == kWait) {
    const uint32_t ms = rd.u32(), n = rd.u32();
    if (!rd.ok) return garbled;
    if (n > limits_.maxKeysPerRequest)
      return Status(ErrorCategory::kInvalidUsage,
                    "a wait for " + std::to_string(n) + " keys is past the key cap of " +
                        std::to_string(limits_.maxKeysPerRequest) + " keys per request");
    Waiter w{&c, {}, Clock::now() + Duration(ms)};
    for (uint32_t k = 0; k < n && rd.ok; ++k) w.keys.push_back(rd.str());
    if (!rd.ok) return garbled;
    bool done = false;
    XSITE_RETURN_IF_ERROR(answer(w, false, done));
    if (!done) {
      c.waiting = true;
      waits_.push_back(std::move(w));
    }
    return Status::ok();
  }
  return Status(ErrorCategory::kRemote, "request type " + std::to_string(op) +
                                            " is not one of the store's (not an xsite store "
                                            "client, or another xsite version?)");
}

// Answers `w` when every key is there, or with the missing keys when `final`. The reply's size
// is known before it is built: a wait naming one large value many times costs nothing.
Status StoreService::answer(Waiter& w, bool final, bool& done) {
  size_t found = 5, missing = 5, nMissing = 0;
  for (const auto& k : w.keys) {
    auto it = kv_.find(k);
    if (it != kv_.end()) {
      found += 4 + it->second.size();
    } else {
      missing += 4 + k.size();
      ++nMissing;
    }
  }
  done = nMissing == 0 || final;
  if (!done) return Status::ok();
  const size_t bytes = nMissing == 0 ? found : missing;
  if (bytes > limits_.maxReplyBytes)
    return Status(ErrorCategory::kInvalidUsage,
                  "the answer to its wait for " + std::to_string(w.keys.size()) +
                      " keys comes to " + std::to_string(bytes) + " bytes, past the reply cap of " +
                      std::to_string(limits_.maxReplyBytes) + " bytes");
  std::string reply(1, static_cast<char>(nMissing == 0 ? kOk : kMissing));
  reply.reserve(bytes);
  putU32(reply, static_cast<uint32_t>(nMissing == 0 ? w.keys.size() : nMissing));
  for (const auto& k : w.keys) {
    auto it = kv_.find(k);
    if (nMissing == 0)
      putStr(reply, it->second);
    else if (it == kv_.end())
      putStr(reply, k);
  }
  queue(*w.client, reply);
  return Status::ok();
}

void StoreService::queue(Client& c, const std::string& payload) {
  const size_t unsent = c.out.size() - c.outPos;
  putU32(c.out, static_cast<uint32_t>(payload.size()));
  c.out += payload;
  // One reply (bounded by the reply cap) is always queued; replies piling up behind it mean the
  // client sends requests and does not read the answers.
  if (unsent > 0 && c.out.size() - c.outPos > limits_.maxClientBytes) {
    const std::string why =
        "it does not read its replies: " + std::to_string(c.out.size() - c.outPos) +
        " bytes queued, past the buffer cap of " + std::to_string(limits_.maxClientBytes) +
        " bytes per client";
    return drop(c, why.c_str());
  }
  flush(c);
}

void StoreService::flush(Client& c) noexcept {
  while (c.fd.valid() && c.outPos < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.outPos, c.out.size() - c.outPos,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) drop(c, nullptr);
      return;
    }
    c.outPos += static_cast<size_t>(n);
  }
  if (c.outPos == c.out.size()) {
    release(c.out);
    c.outPos = 0;
    if (c.closing) drop(c, nullptr);
  } else if (c.outPos > c.out.size() / 2) {
    c.out.erase(0, c.outPos);
    c.outPos = 0;
  }
}

void StoreService::refuse(Client& c, const std::string& why) {
  XSITE_WARN(kBootstrap, "store: disconnecting %s: %s", c.peer.c_str(), why.c_str());
  c.closing = true;
  c.closeBy = Clock::now() + std::chrono::seconds(1);
  release(c.in);
  c.inPos = 0;
  queue(c, errorReply(why));
}

void StoreService::drop(Client& c, const char* why) noexcept {
  if (why) XSITE_WARN(kBootstrap, "store: disconnecting %s: %s", c.peer.c_str(), why);
  c.fd.reset();
  c.waiting = false;
  release(c.in);
  release(c.out);
  c.inPos = c.outPos = 0;
}

void StoreService::fail(Client& c, const char* what) noexcept {
  try {
    refuse(c, std::string("internal error in the store: ") + what);
  } catch (...) {
    drop(c, "internal error in the store (and no memory to say so)");
  }
}

void StoreService::answerWaits(Clock::time_point now) {
  const bool changed = std::exchange(changed_, false);
  for (auto it = waits_.begin(); it != waits_.end();) {
    Client& c = *it->client;
    bool done = false;
    if (c.fd.valid() && !c.closing && (changed || now >= it->deadline)) {
      try {
        const Status s = answer(*it, now >= it->deadline, done);
        if (!s) refuse(c, s.message());
      } catch (const std::exception& e) {
        fail(c, e.what());
      }
    }
    if (!done && c.fd.valid() && !c.closing) {
      ++it;
      continue;
    }
    it = waits_.erase(it);
    c.waiting = false;
    try {
      serve(c);  // the requests it sent meanwhile (a wait pushed here is looked at below)
    } catch (const std::exception& e) {
      fail(c, e.what());
    }
  }
}

void StoreService::reap(Clock::time_point now) {
  for (auto& c : clients_)
    if (c.closing && c.fd.valid() && now >= c.closeBy) drop(c, nullptr);  // it never read why
    else if (!c.authed && c.fd.valid() && now >= c.authBy)
      drop(c, "it did not answer the job-secret challenge in time");
  waits_.remove_if([](const Waiter& w) { return !w.client->fd.valid(); });
  clients_.remove_if([](const Client& c) { return !c.fd.valid(); });
}

int StoreService::pollTimeoutMs(Clock::time_point now) const {
  if (changed_) return 0;
  auto next = now + std::chrono::milliseconds(100);
  for (const auto& w : waits_) next = std::min(next, w.deadline);
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::max<int64_t>(ms, 0));
}

}  // namespace

StoreLimits storeLimitsFromParams(const params::Params& p) {
  using params::Id;
  auto cap = [&](Id id) {
    int64_t v = p.integer(id);
    if (v <= 0)
      throw Error(ErrorCategory::kInvalidUsage,
                  std::string(params::info(id).name) + " must be positive, not " + std::to_string(v));
    return static_cast<size_t>(v);
  };
  StoreLimits l;
  l.maxClients = cap(Id::kStoreMaxClients);
  l.maxClientBytes = cap(Id::kStoreMaxClientBuffer);
  l.maxKeysPerRequest = cap(Id::kStoreMaxKeys);
  l.maxReplyBytes = cap(Id::kStoreMaxReply);
  l.maxStoredBytes = cap(Id::kStoreMaxStored);
  return l;
}

TcpStoreServer::TcpStoreServer(const SockAddr& bindAddr, const StoreLimits& limits,
                               JobSecret secret)
    : limits_(limits), secret_(std::move(secret)) {
  listen_ = tcpListen(bindAddr);
  setNonBlocking(listen_.get(), true);
  address_ = localAddr(listen_.get());
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw Error(ErrorCategory::kSystem, "pipe: " + errnoString(errno));
  wakeRead_ = Fd(p[0]);
  wakeWrite_ = Fd(p[1]);
  thread_ = std::thread([this] { run(); });
  XSITE_INFO(kBootstrap, "store serving on %s", address_.toString().c_str());
}

TcpStoreServer::~TcpStoreServer() {
  char c = 'x';
  (void)!::write(wakeWrite_.get(), &c, 1);
  thread_.join();
}

// Whatever a client sends, the thread carries on: its errors are the client's (StoreService),
// and anything else is logged here.
void TcpStoreServer::run() noexcept {
  StoreService service(limits_, secret_);
  std::vector<pollfd> pfds;
  while (true) {
    try {
      const auto now = Clock::now();
      pfds.clear();
      pfds.push_back({service.acceptPaused(now) ? -1 : listen_.get(), POLLIN, 0});
      pfds.push_back({wakeRead_.get(), POLLIN, 0});
      service.addPollFds(pfds);
      ::poll(pfds.data(), pfds.size(), service.pollTimeoutMs(now));
      if (pfds[1].revents) return;
      if (pfds[0].revents & POLLIN) service.acceptAll(listen_.get(), Clock::now());
      service.onEvents(pfds.data() + 2, pfds.size() - 2);
      service.answerWaits(Clock::now());
      service.reap(Clock::now());
    } catch (const std::exception& e) {
      XSITE_WARN(kBootstrap, "store: server thread: %s; carrying on", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // no hot loop if it repeats
    } catch (...) {
      XSITE_WARN(kBootstrap, "store: server thread: unknown exception; carrying on");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

// ---- TCP client -------------------------------------------------------------------------------

namespace {

Error garbledReply(const SockAddr& server) {
  return Error(ErrorCategory::kRemote, "garbled reply from the store at " + server.toString() +
                                           " (not an xsite store, or another xsite version?)");
}

}  // namespace

TcpStore::TcpStore(const SockAddr& server, Duration connectTimeout, const JobSecret& secret,
                   size_t maxReply)
    : server_(server), maxReply_(maxReply) {
  const auto deadline = Clock::now() + connectTimeout;
  try {
    fd_ = tcpConnect(server, deadline);
  } catch (const Error& e) {
    throw Error(e.category(), "cannot reach the rendezvous store at " + server.toString() +
                                  " (XSITE_STORE_ADDR / MASTER_ADDR): " + e.message());
  }
  setKeepAlive(fd_.get(), kStoreUserTimeout);
  const auto authDeadline = Clock::now() + kAuthLimit;
  // A store that refuses this client (its client cap) says why in a reply, not a challenge.
  uint32_t head = 0;
  for (ssize_t got = 0; got < 4 && Clock::now() < authDeadline;) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    got = ::recv(fd_.get(), &head, 4, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;  // said below
    if (got == 4 && head != AuthChallenge::kMagic) readReply(authDeadline);  // throws why
  }
  throwIfError(authenticateToListener(fd_.get(), secret, authDeadline,
                                      "the rendezvous store at " + server.toString()));
}

std::string TcpStore::roundTrip(const std::string& request, Duration timeout) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!broken_.empty())
    throw Error(ErrorCategory::kRemote, "rendezvous store at " + server_.toString() +
                                            ": this connection broke earlier (" + broken_ + ")");
  auto deadline = Clock::now() + timeout + grace_;  // the server answers at `timeout`
  try {
    std::string f = frame(request);
    Status s = writeAll(fd_.get(), f.data(), f.size(), deadline);
    if (!s)
      throw Error(s.category(), "rendezvous store at " + server_.toString() + ": " + s.message());
    return readReply(deadline);
  } catch (const Error& e) {
    broken_ = e.message();  // a late reply would be read as the next request's
    fd_.reset();
    throw;
  }
}

std::string TcpStore::readReply(Clock::time_point deadline) {
  uint32_t len = 0;
  Status s = readAll(fd_.get(), &len, 4, deadline);
  if (s && len > maxReply_)  // checked before anything is allocated for it
    s = Status(ErrorCategory::kRemote,
               "it announced a reply of " + std::to_string(len) + " bytes, past the reply cap of " +
                   std::to_string(maxReply_) + " bytes (not an xsite store, or another version?)");
  std::string reply;
  if (s) {
    reply.resize(len);
    s = readAll(fd_.get(), reply.data(), len, deadline);
  }
  if (!s)
    throw Error(s.category(), "rendezvous store at " + server_.toString() + ": " + s.message());
  if (!reply.empty() && reply[0] == kError) {
    Reader rd{reply};
    rd.pos = 1;
    const std::string why = rd.str();
    throw Error(ErrorCategory::kRemote, "the rendezvous store at " + server_.toString() +
                                            " disconnected this client: " +
                                            (rd.ok ? why : std::string("(garbled reason)")));
  }
  return reply;
}

void TcpStore::set(const std::string& key, const std::string& value) {
  std::string req(1, static_cast<char>(kSet));
  putStr(req, key);
  putStr(req, value);
  if (roundTrip(req, Duration(0)) != std::string(1, static_cast<char>(kOk)))
    throw garbledReply(server_);
}

std::string TcpStore::setIfAbsent(const std::string& key, const std::string& value) {
  std::string req(1, static_cast<char>(kSetIfAbsent));
  putStr(req, key);
  putStr(req, value);
  const std::string reply = roundTrip(req, Duration(0));
  Reader rd{reply};
  rd.pos = 1;
  const uint32_t n = rd.u32();
  std::string now = rd.str();
  if (reply.empty() || reply[0] != kOk || n != 1 || !rd.ok) throw garbledReply(server_);
  return now;
}

bool TcpStore::waitFor(const std::vector<std::string>& keys, Duration timeout,
                       std::vector<std::string>& out) {
  std::string req(1, static_cast<char>(kWait));
  putU32(req, static_cast<uint32_t>(std::min<int64_t>(timeout.count(), UINT32_MAX)));
  putU32(req, static_cast<uint32_t>(keys.size()));
  for (const auto& k : keys) putStr(req, k);
  std::string reply = roundTrip(req, timeout);
  Reader rd{reply};
  rd.pos = 1;
  uint32_t n = rd.u32();
  std::vector<std::string> list;
  for (uint32_t i = 0; i < n && rd.ok; ++i) list.push_back(rd.str());
  if (reply.empty() || !rd.ok) throw garbledReply(server_);
  if (reply[0] == kOk && list.size() != keys.size())
    throw Error(ErrorCategory::kRemote, "short reply from the store at " + server_.toString());
  out = std::move(list);
  return reply[0] == kOk;
}

}  // namespace xsite::bootstrap
