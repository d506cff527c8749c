#include "bootstrap/heartbeat.h"

#include <algorithm>
#include <cstdio>

#include "util/log.h"

namespace xsite::bootstrap {
namespace {

using Clock = std::chrono::steady_clock;
const char* const kFailureKey = "failure";

std::string seconds(Clock::duration d) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

// The failure record: "<reporter> <message>".
Failure parseFailure(const std::string& record) {
  Failure f;
  const size_t space = record.find(' ');
  f.reporter = space == std::string::npos ? -1 : std::atoi(record.substr(0, space).c_str());
  f.message = space == std::string::npos ? record : record.substr(space + 1);
  return f;
}

}  // namespace

std::string heartbeatKey(int rank) { return "hb/" + std::to_string(rank); }

Failure reportFailure(Store& store, int rank, const std::string& message) {
  return parseFailure(store.setIfAbsent(kFailureKey, std::to_string(rank) + " " + message));
}

std::optional<Failure> findFailure(Store& store) {
  std::vector<std::string> out;
  if (!store.waitFor({kFailureKey}, Duration(0), out)) return std::nullopt;
  return parseFailure(out[0]);
}

std::string describeFailure(const Failure& f) {
  return "rank " + std::to_string(f.reporter) + " saw the job's first failure: " + f.message;
}

void Heartbeat::announce(Store& store, int rank) { store.set(heartbeatKey(rank), "0"); }

struct Heartbeat::Watch {
  std::vector<std::string> keys, last;
  std::vector<Clock::time_point> changed;
  std::vector<char> done;
  Clock::time_point lastTick{};
  Clock::time_point failureSeen{};  // when this rank first read the failure record
  bool finishing = false;
  bool othersGone = false;  // every other rank is done or stands still
};

Heartbeat::Heartbeat(std::unique_ptr<Store> store, int rank, int size, Duration period,
                     std::vector<std::string> names, OnFailure onFailure)
    : store_(std::move(store)),
      rank_(rank),
      size_(size),
      period_(std::max(period, Duration(4))),
      names_(std::move(names)),
      onFailure_(std::move(onFailure)) {
  thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() { finish(); }

std::string Heartbeat::nameOf(int rank) const {
  if (rank >= 0 && static_cast<size_t>(rank) < names_.size() && !names_[rank].empty())
    return names_[rank];
  return "rank " + std::to_string(rank);
}

void Heartbeat::finish(Duration othersCap) {
  std::unique_lock<std::mutex> lk(mu_);
  if (finished_) return;
  finished_ = true;
  // Rank 0 keeps the thread watching (and saying it is done) until the others are gone too.
  if (othersCap > Duration(0)) {
    cv_.notify_all();
    cv_.wait_for(lk, othersCap, [&] { return stop_; });
  }
  stop_ = true;
  lk.unlock();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (storeBroken_) return;
  try {
    store_->set(heartbeatKey(rank_), kHeartbeatDone);
  } catch (const std::exception& e) {  // the store is gone: nobody is left to wait for this rank
    XSITE_DEBUG(kBootstrap, "rank %d: could not say it is done: %s", rank_, e.what());
  }
}

void Heartbeat::report(ErrorCategory category, const std::string& message) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (report_) return;
    report_.emplace(category, message);
  }
  cv_.notify_all();
}

void Heartbeat::run() noexcept {
  Watch w;
  for (int r = 0; r < size_; ++r) w.keys.push_back(heartbeatKey(r));
  w.last.assign(size_, "");
  w.changed.assign(size_, Clock::now());
  w.done.assign(size_, 0);
  const Duration tickEvery = period_ / 4;
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    w.finishing = finished_;
    std::optional<Error> mine;
    if (report_ && !reported_) {
      mine = report_;
      reported_ = true;
    }
    lk.unlock();
    if (!storeBroken_) {
      try {
        if (mine && !failed_) {
          const Failure first = reportFailure(*store_, rank_, mine->message());
          failed_ = true;
          onFailure_(first.reporter == rank_ ? *mine
                                             : Error(ErrorCategory::kRemote, describeFailure(first)));
        }
        tick(w);
      } catch (const std::exception& e) {
        storeBroken_ = true;  // its connection is unusable now
        const auto* xe = dynamic_cast<const Error*>(&e);
        // After rank 0 is done, its store may go at any time: nothing is left to watch.
        if (!failed_ && !w.finishing && !w.done[0]) {
          failed_ = true;
          onFailure_(Error(ErrorCategory::kRemote,
                           nameOf(0) + ", which serves the rendezvous store, did not answer a " +
                               "heartbeat (" + (xe ? xe->message() : e.what()) +
                               "): it is stopped, hung, dead or cut off from this rank"));
        }
      }
    }
    lk.lock();
    if (w.finishing && (w.othersGone || storeBroken_)) {
      stop_ = true;
      cv_.notify_all();
      break;
    }
    cv_.wait_for(lk, tickEvery, [&] { return stop_ || (report_ && !reported_); });
  }
}

void Heartbeat::tick(Watch& w) {
  auto now = Clock::now();
  if (w.lastTick != Clock::time_point{} && now - w.lastTick > period_) {
    // This process was stopped or starved: it cannot tell who else stood still.
    std::fill(w.changed.begin(), w.changed.end(), now);
  }
  w.lastTick = now;
  store_->set(heartbeatKey(rank_), w.finishing ? kHeartbeatDone : std::to_string(++beat_));
  if (w.failureSeen == Clock::time_point{}) {
    if (auto f = findFailure(*store_)) {
      w.failureSeen = now;
      if (!failed_ && !w.finishing) {
        failed_ = true;
        onFailure_(Error(ErrorCategory::kRemote,
                         f->reporter == rank_ ? f->message : describeFailure(*f)));
      }
    }
  }
  std::vector<std::string> values;
  if (!store_->waitFor(w.keys, Duration(0), values)) return;  // not every rank announced itself
  now = Clock::now();
  std::vector<int> still;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ || w.done[r]) continue;
    if (values[r] == kHeartbeatDone) {
      w.done[r] = 1;
    } else if (values[r] != w.last[r]) {
      w.last[r] = values[r];
      w.changed[r] = now;
    } else if (now - w.changed[r] > 2 * period_) {
      still.push_back(r);
    }
  }
  if (w.done[0]) rank0Done_.store(true, std::memory_order_release);
  // Every other rank is done or stands still; or the job failed a period ago, so that every
  // rank's heartbeat has read the failure record by now.
  bool allGone = true;
  for (int r = 0; r < size_; ++r)
    if (r != rank_ && !w.done[r] && std::find(still.begin(), still.end(), r) == still.end())
      allGone = false;
  w.othersGone = allGone || (w.failureSeen != Clock::time_point{} && now - w.failureSeen > period_);
  if (still.empty() || failed_ || w.finishing) return;
  std::string who;
  for (int r : still) who += (who.empty() ? "" : ", ") + nameOf(r);
  const std::string what =
      who + (still.size() > 1 ? " have" : " has") + " sent no heartbeat for " +
      seconds(now - w.changed[still[0]]) + " (XSITE_HEARTBEAT=" + seconds(period_) +
      "): stopped (SIGSTOP, a debugger), hung, or cut off from the store at rank 0";
  const Failure first = reportFailure(*store_, rank_, what);
  failed_ = true;
  XSITE_WARN(kBootstrap, "%s", what.c_str());
  onFailure_(Error(ErrorCategory::kRemote, first.reporter == rank_ ? what : describeFailure(first)));
}

}  // namespace xsite::bootstrap
