#include "bootstrap/rendezvous.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "util/log.h"

namespace xsite::bootstrap {

using params::Id;

namespace {

// What a rank says when the store it reached is not its job's (jobs that share MASTER_PORT by
// mistake: the second job's rank 0 cannot serve the port, its other ranks reach the first's store).
const char* const kForeignStore =
    "the store belongs to another job or program (jobs that share MASTER_PORT or XSITE_STORE_ADDR "
    "by mistake: give each job its own)";

// Every rank claims its rank number first, before it writes anything else: a rank of another job
// that reached this store fails here, instead of overwriting this job's keys.
void claimRank(Store& store, const std::string& where, int rank, int worldSize) {
  const std::string me = "pid " + std::to_string(getpid()) + " on " + hostName();
  const std::string mine = me + "#" + std::to_string(randomNonce());  // unique per attempt
  const std::string held = store.setIfAbsent("rank/" + std::to_string(rank), mine);
  if (held == mine) return;
  const std::string holder = held.substr(0, std::min<size_t>(held.find('#'), 80));
  throw Error(ErrorCategory::kInvalidUsage,
              "rank " + std::to_string(rank) + " of " + std::to_string(worldSize) + ": the " +
                  where + " already has a rank " + std::to_string(rank) + ", " + holder +
                  " (this is " + me + "): " + kForeignStore +
                  ", or two processes of this job were given the same rank");
}

// The "job" key: "<id> <world size>", written by rank 0.
uint64_t parseJob(const std::string& value, const std::string& where, int rank, int worldSize) {
  unsigned long long id = 0;
  int world = 0, used = -1;
  if (sscanf(value.c_str(), "%llu %d%n", &id, &world, &used) != 2 ||
      used != static_cast<int>(value.size()) || value[0] < '0' || value[0] > '9' || world < 1) {
    std::string shown = value.substr(0, 40);
    for (char& ch : shown)
      if (ch < 32 || ch > 126) ch = '?';
    throw Error(ErrorCategory::kRemote,
                "rank " + std::to_string(rank) + ": the " + where + " holds job='" + shown +
                    (value.size() > 40 ? "...'" : "'") + ", not a job id: " + kForeignStore);
  }
  if (world != worldSize)
    throw Error(ErrorCategory::kInvalidUsage, "rank " + std::to_string(rank) + " of " +
                                                  std::to_string(worldSize) + ": the " + where +
                                                  " serves a job of " + std::to_string(world) +
                                                  " ranks (rank 0's world size): " + kForeignStore +
                                                  ", or the ranks disagree on the world size");
  return id;
}

}  // namespace

Rendezvous::Rendezvous(const params::Params& p, int rank, int worldSize, Duration timeout)
    : rank_(rank), worldSize_(worldSize), timeout_(timeout) {
  std::string addr = p.string(Id::kStoreAddr);
  if (addr.empty() && p.isSet(Id::kMasterAddr) && p.isSet(Id::kMasterPort)) {
    int port = std::atoi(p.string(Id::kMasterPort).c_str());
    addr = p.string(Id::kMasterAddr) + ":" + std::to_string(port + 1);  // beside torchrun's store
  }
  listenIp_ = p.string(Id::kListenAddr);
  if (addr.empty()) {
    if (worldSize > 1)
      throw Error(ErrorCategory::kInvalidUsage,
                  "rank " + std::to_string(rank) + " of " + std::to_string(worldSize) +
                      ": no rendezvous address; set XSITE_STORE_ADDR=host:port (or MASTER_ADDR and "
                      "MASTER_PORT), or start the job with xsite-run");
    solo_ = std::make_unique<InProcessStore>();
    store_ = solo_.get();
    if (listenIp_.empty()) listenIp_ = "127.0.0.1";
  } else {
    SockAddr sa = parseSockAddr(addr);
    storeAddr_ = sa;
    secret_ = JobSecret::fromParams(p);  // an in-process store has no connections to guard
    const StoreLimits limits = storeLimitsFromParams(p);
    if (rank == 0) {
      try {
        server_ = std::make_unique<TcpStoreServer>(sa, limits, secret_);
      } catch (const Error& e) {
        throw Error(e.category(), "rank 0 cannot serve the rendezvous store at " + addr +
                                      " (does another job use the same MASTER_PORT or "
                                      "XSITE_STORE_ADDR?): " +
                                      e.message());
      }
    }
    maxReply_ = limits.maxReplyBytes;
    client_ = std::make_unique<TcpStore>(sa, timeout, secret_, limits.maxReplyBytes);
    store_ = client_.get();
    if (listenIp_.empty()) listenIp_ = routeSourceIp(sa);
  }
  meet(addr.empty() ? std::string("in-process store") : "store at " + addr);
}

Rendezvous::Rendezvous(Store& external, const params::Params& p, int rank, int worldSize,
                       Duration timeout)
    : rank_(rank), worldSize_(worldSize), timeout_(timeout), store_(&external), external_(true) {
  secret_ = JobSecret::fromParams(p);
  listenIp_ = p.string(Id::kListenAddr);
  if (listenIp_.empty() && p.isSet(Id::kMasterAddr))  // the address that reaches the job's master
    listenIp_ = routeSourceIp(parseSockAddr(p.string(Id::kMasterAddr), 1));
  if (listenIp_.empty()) {
    if (worldSize > 1)
      throw Error(ErrorCategory::kInvalidUsage,
                  "rank " + std::to_string(rank) + " of " + std::to_string(worldSize) +
                      ": no address to listen on; set XSITE_LISTEN_ADDR (or MASTER_ADDR)");
    listenIp_ = "127.0.0.1";
  }
  meet("caller's store");
}

void Rendezvous::meet(const std::string& where) {
  claimRank(*store_, where, rank_, worldSize_);
  if (rank_ == 0)
    store_->set("job", std::to_string(randomNonce() ^ static_cast<uint64_t>(getpid())) + " " +
                           std::to_string(worldSize_));
  job_ = parseJob(store_->get("job", timeout_), where, rank_, worldSize_);
}

void Rendezvous::leave() {
  allGather(*store_, "ready", rank_, worldSize_, "", timeout_);
  if (client_ && rank_ != 0) client_->set("left/" + std::to_string(rank_), "");
  left_ = true;
}

void Rendezvous::abandon() noexcept {
  if (left_ || !client_ || rank_ == 0) return;
  left_ = true;
  try {
    client_->set("left/" + std::to_string(rank_), "failed");
  } catch (...) {  // the store is gone already: nothing to tell
  }
}

std::unique_ptr<Store> Rendezvous::connect(Duration grace) const {
  if (!client_) return nullptr;
  auto c = std::make_unique<TcpStore>(storeAddr_, timeout_, secret_, maxReply_);
  c->setReplyGrace(grace);
  return c;
}

std::vector<std::string> Rendezvous::processes() {
  std::vector<std::string> keys;
  for (int r = 0; r < worldSize_; ++r) keys.push_back("rank/" + std::to_string(r));
  std::vector<std::string> out = store_->get(keys, timeout_);
  for (auto& v : out) v = v.substr(0, std::min<size_t>(v.find('#'), 80));
  return out;
}

Rendezvous::~Rendezvous() {
  if (external_) {
    // The caller's store usually lives in rank 0's process (torch's TCPStore): rank 0 stays
    // until every rank has closed (bounded), so that a rank still failing can read and write
    // the job's failure record there instead of finding the store gone.
    try {
      if (rank_ != 0) {
        store_->set("closed/" + std::to_string(rank_), "");
      } else {
        std::vector<std::string> keys, out;
        for (int r = 1; r < worldSize_; ++r) keys.push_back("closed/" + std::to_string(r));
        store_->waitFor(keys, std::min(timeout_, Duration(10000)), out);
      }
    } catch (...) {  // the store is gone already
    }
    return;
  }
  if (!server_ || !client_) return;
  try {  // serve until every rank has left the set-up (bounded)
    std::vector<std::string> keys, out;
    for (int r = 1; r < worldSize_; ++r) keys.push_back("left/" + std::to_string(r));
    client_->waitFor(keys, Duration(10000), out);
  } catch (...) {
  }
}

}  // namespace xsite::bootstrap
