#include "bootstrap/rendezvous.h"

#include <unistd.h>

#include <cstdlib>
#include <random>

#include "util/log.h"

namespace xsite::bootstrap {

using params::Id;

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
    if (rank == 0) {
      try {
        server_ = std::make_unique<TcpStoreServer>(sa);
      } catch (const Error& e) {
        throw Error(e.category(), std::string("rank 0 cannot serve the rendezvous store: ") + e.what());
      }
    }
    client_ = std::make_unique<TcpStore>(sa, timeout);
    store_ = client_.get();
    if (listenIp_.empty()) listenIp_ = routeSourceIp(sa);
  }
  if (rank == 0) {
    const uint64_t job = randomNonce() ^ static_cast<uint64_t>(getpid());
    store_->set("job", std::to_string(job));
  }
  job_ = std::stoull(store_->get("job", timeout));
}

void Rendezvous::leave() {
  allGather(*store_, "ready", rank_, worldSize_, "", timeout_);
  if (client_ && rank_ != 0) {
    client_->set("left/" + std::to_string(rank_), "");
    client_.reset();
    store_ = nullptr;
  }
}

void Rendezvous::abandon() noexcept {
  if (!client_ || rank_ == 0) return;
  try {
    client_->set("left/" + std::to_string(rank_), "failed");
  } catch (...) {  // the store is gone already: nothing to tell
  }
  client_.reset();
  store_ = nullptr;
}

Rendezvous::~Rendezvous() {
  if (!server_ || !client_) return;
  try {  // serve until every rank has left the rendezvous (bounded)
    std::vector<std::string> keys, out;
    for (int r = 1; r < worldSize_; ++r) keys.push_back("left/" + std::to_string(r));
    client_->waitFor(keys, Duration(10000), out);
  } catch (...) {
  }
}

}  // namespace xsite::bootstrap
