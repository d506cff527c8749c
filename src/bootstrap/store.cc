#include "bootstrap/store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>

#include "util/log.h"

namespace xsite::bootstrap {
namespace {

using Clock = std::chrono::steady_clock;

// Wire format: every message is [u32 length][payload]; payload strings are [u32 len][bytes].
enum Op : uint8_t { kSet = 1, kWait = 2 };
enum Reply : uint8_t { kOk = 0, kMissing = 1 };
constexpr uint32_t kMaxMessage = 64u << 20;

void putU32(std::string& b, uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void putStr(std::string& b, const std::string& s) {
  putU32(b, static_cast<uint32_t>(s.size()));
  b += s;
}

struct Reader {
  const std::string& b;
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
    std::string s = b.substr(pos, n);
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

std::vector<std::string> Store::get(const std::vector<std::string>& keys, Duration timeout) {
  std::vector<std::string> out;
  if (!waitFor(keys, timeout, out)) throw Error(ErrorCategory::kTimeout, missingMessage(out, timeout));
  return out;
}

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

TcpStoreServer::TcpStoreServer(const SockAddr& bindAddr) {
  listen_ = tcpListen(bindAddr);
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

void TcpStoreServer::run() {
  struct Client {
    Fd fd;
    std::string in;
  };
  struct Waiter {
    Client* client;
    std::vector<std::string> keys;
    Clock::time_point deadline;
    Duration timeout;
  };
  std::list<Client> clients;
  std::list<Waiter> waiters;
  std::map<std::string, std::string> kv;

  auto send = [](Client& c, const std::string& payload) {
    Status s = writeAll(c.fd.get(), frame(payload).data(), payload.size() + 4,
                        Clock::now() + std::chrono::seconds(10));
    if (!s) c.fd.reset();  // a client that cannot take its answer is dropped
  };
  auto tryAnswer = [&](Waiter& w, bool final) {
    std::vector<std::string> missing;
    for (const auto& k : w.keys)
      if (!kv.count(k)) missing.push_back(k);
    if (!missing.empty() && !final) return false;
    std::string reply(1, static_cast<char>(missing.empty() ? kOk : kMissing));
    const auto& list = missing.empty() ? w.keys : missing;
    putU32(reply, static_cast<uint32_t>(list.size()));
    for (const auto& k : list) putStr(reply, missing.empty() ? kv[k] : k);
    send(*w.client, reply);
    return true;
  };

  while (true) {
    std::vector<pollfd> pfds{{listen_.get(), POLLIN, 0}, {wakeRead_.get(), POLLIN, 0}};
    for (auto& c : clients) pfds.push_back({c.fd.get(), POLLIN, 0});
    int timeoutMs = 100;
    ::poll(pfds.data(), pfds.size(), timeoutMs);
    if (pfds[1].revents) return;
    if (pfds[0].revents & POLLIN) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        setNoDelay(fd);
        clients.push_back(Client{Fd(fd), {}});
      }
    }
    size_t i = 2;
    for (auto& c : clients) {
      if (i >= pfds.size()) break;
      short rev = pfds[i++].revents;
      if (!rev || !c.fd.valid()) continue;
      char buf[65536];
      ssize_t r = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) c.fd.reset();
        continue;
      }
      c.in.append(buf, static_cast<size_t>(r));
      while (c.in.size() >= 4 && c.fd.valid()) {
        uint32_t len;
        memcpy(&len, c.in.data(), 4);
        if (len > kMaxMessage) {
          XSITE_WARN(kBootstrap, "store: dropping a client that sent a %u-byte message", len);
          c.fd.reset();
          break;
        }
        if (c.in.size() < 4 + len) break;
        std::string msg = c.in.substr(4, len);
        c.in.erase(0, 4 + len);
        Reader rd{msg};
        if (msg.empty()) { c.fd.reset(); break; }
        rd.pos = 1;
        if (msg[0] == kSet) {
          std::string k = rd.str(), v = rd.str();
          if (!rd.ok) { c.fd.reset(); break; }
          kv[k] = v;
          send(c, std::string(1, static_cast<char>(kOk)));
        } else if (msg[0] == kWait) {
          uint32_t ms = rd.u32();
          uint32_t n = rd.u32();
          Waiter w{&c, {}, Clock::now() + Duration(ms), Duration(ms)};
          for (uint32_t k = 0; k < n && rd.ok; ++k) w.keys.push_back(rd.str());
          if (!rd.ok) { c.fd.reset(); break; }
          if (!tryAnswer(w, false)) waiters.push_back(std::move(w));
        } else {
          c.fd.reset();
        }
      }
    }
    auto now = Clock::now();
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (!it->client->fd.valid() || tryAnswer(*it, now >= it->deadline))
        it = waiters.erase(it);
      else
        ++it;
    }
    clients.remove_if([&](const Client& c) {
      if (c.fd.valid()) return false;
      for (const auto& w : waiters)
        if (w.client == &c) return false;
      return true;
    });
  }
}

// ---- TCP client -------------------------------------------------------------------------------

TcpStore::TcpStore(const SockAddr& server, Duration connectTimeout) : server_(server) {
  try {
    fd_ = tcpConnect(server, Clock::now() + connectTimeout);
  } catch (const Error& e) {
    throw Error(e.category(), "cannot reach the rendezvous store at " + server.toString() +
                                  " (XSITE_STORE_ADDR / MASTER_ADDR): " + e.what());
  }
}

std::string TcpStore::roundTrip(const std::string& request, Duration timeout) {
  std::lock_guard<std::mutex> lk(mu_);
  auto deadline = Clock::now() + timeout + std::chrono::seconds(10);  // server answers at timeout
  std::string f = frame(request);
  Status s = writeAll(fd_.get(), f.data(), f.size(), deadline);
  uint32_t len = 0;
  if (s) s = readAll(fd_.get(), &len, 4, deadline);
  if (s && len > kMaxMessage) s = Status(ErrorCategory::kRemote, "oversized reply");
  std::string reply(len, '\0');
  if (s) s = readAll(fd_.get(), reply.data(), len, deadline);
  if (!s)
    throw Error(s.category(), "rendezvous store at " + server_.toString() + ": " + s.message());
  return reply;
}

void TcpStore::set(const std::string& key, const std::string& value) {
  std::string req(1, static_cast<char>(kSet));
  putStr(req, key);
  putStr(req, value);
  roundTrip(req, Duration(0));
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
  if (reply.empty() || !rd.ok)
    throw Error(ErrorCategory::kRemote, "garbled reply from the store at " + server_.toString());
  if (reply[0] == kOk && list.size() != keys.size())
    throw Error(ErrorCategory::kRemote, "short reply from the store at " + server_.toString());
  out = std::move(list);
  return reply[0] == kOk;
}

}  // namespace xsite::bootstrap
