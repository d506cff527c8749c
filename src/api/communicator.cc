#include "xsite/communicator.h"

#include "coll/collectives.h"
#include "coll/member.h"
#include "coll/reduce.h"
#include "util/log.h"

namespace xsite {
namespace {

void checkCount(const char* what, size_t count, DataType type, const void* send, const void* recv,
                size_t multiple = 1) {
  if (static_cast<int>(type) < 0 || static_cast<int>(type) >= kNumDataTypes)
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": invalid data type " +
                                                  std::to_string(static_cast<int>(type)));
  size_t esize = dataTypeSize(type);
  if (count > SIZE_MAX / esize / multiple)
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": count " +
                                                  std::to_string(count) + " overflows the address space");
  if (count > 0 && (send == nullptr || recv == nullptr))
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": null buffer with count " +
                                                  std::to_string(count));
}

}  // namespace

// ---- LocalGroup -------------------------------------------------------------------------------

struct LocalGroup::Impl {
  coll::LocalWorld world;
};

LocalGroup::LocalGroup(const std::vector<std::vector<int>>& shape, Config config)
    : impl_(new Impl{coll::LocalWorld(shape, config)}) {}

LocalGroup::LocalGroup(int sites, int domainsPerSite, int ranksPerDomain, Config config)
    : LocalGroup(std::vector<std::vector<int>>(
                     std::max(sites, 0), std::vector<int>(std::max(domainsPerSite, 0), ranksPerDomain)),
                 config) {}

LocalGroup::~LocalGroup() = default;
int LocalGroup::size() const { return impl_->world.topology.size(); }

// ---- Communicator -----------------------------------------------------------------------------

struct Communicator::Impl {
  std::unique_ptr<coll::Member> member;
  coll::Context& ctx() { return member->context(); }
  bool codecLogged[kNumCodecs] = {};

  template <typename F>
  void run(F&& collective) {
    member->run(std::forward<F>(collective));
  }

  // Says which codec the cross-site stage ran and what it saved: INFO the first time a codec
  // runs on this communicator, DEBUG after.
  void logCodec(Codec codec, const coll::WanCounters& before, const coll::WanCounters& after) {
    const uint64_t raw = after.raw - before.raw, wire = after.wire - before.wire;
    if (codec == Codec::kNone || raw == 0) return;
    const bool first = !codecLogged[static_cast<int>(codec)];
    codecLogged[static_cast<int>(codec)] = true;
    const std::string name(codecName(codec));
    const double ratio = static_cast<double>(raw) / static_cast<double>(std::max<uint64_t>(wire, 1));
    const auto r = static_cast<unsigned long long>(raw), w = static_cast<unsigned long long>(wire);
    const auto level = first ? log::Level::kInfo : log::Level::kDebug;
    if (log::enabled(level, log::kColl))
      log::write(level, log::kColl,
                 "all-reduce cross-site codec %s: %llu bytes sent as %llu (ratio %.2f)",
                 name.c_str(), r, w, ratio);
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

Communicator Communicator::fromLocalGroup(LocalGroup& group, int rank) {
  auto impl = std::make_unique<Impl>();
  impl->member = coll::Member::join(group.impl_->world, rank);
  return Communicator(std::move(impl));
}

Communicator Communicator::fromEnvironment(const Config& config) {
  return fromRendezvous(nullptr, -1, -1, config);
}

Communicator Communicator::fromStore(Store& store, int rank, int size, const Config& config) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error(ErrorCategory::kInvalidUsage, "fromStore: rank " + std::to_string(rank) +
                                                  " is not in a world of " + std::to_string(size));
  return fromRendezvous(&store, rank, size, config);
}

Communicator Communicator::fromRendezvous(Store* external, int rank, int size, const Config& config) {
  auto impl = std::make_unique<Impl>();
  impl->member = coll::Member::join(external, rank, size, config);
  return Communicator(std::move(impl));
}

void Communicator::abort() noexcept {
  if (impl_ && impl_->member) impl_->ctx().abort();
}

int Communicator::rank() const { return impl_->ctx().rank(); }
int Communicator::size() const { return impl_->ctx().size(); }
int Communicator::numSites() const { return impl_->ctx().topology().numSites(); }
std::string Communicator::describeTopology() const { return impl_->ctx().topology().describe(); }

std::string Communicator::describeTransports() const {
  return coll::describe(impl_->member->backends());
}

Placement Communicator::placement(int rank) const {
  const auto& t = impl_->ctx().topology();
  if (rank < 0 || rank >= t.size())
    throw Error(ErrorCategory::kInvalidUsage, "placement: no rank " + std::to_string(rank));
  const auto& pl = t.place(rank);
  return Placement{pl.site, pl.domain, pl.local};
}

Algorithm Communicator::chooseAlgorithm(size_t count, DataType type, ReduceOp op,
                                        const AllReduceOptions& options) const {
  const auto& st = impl_->ctx().settings();
  const Algorithm requested =
      options.algorithm == Algorithm::kAuto ? st.defaultAlgorithm : options.algorithm;
  return coll::resolveAlgorithm(impl_->ctx(), requested, count, type, op,
                                options.codec.value_or(st.codec));
}

void Communicator::allReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                             const AllReduceOptions& options) {
  checkCount("allReduce", count, type, send, recv);
  coll::checkReduction("allReduce", static_cast<int>(type), static_cast<int>(op));
  if (count == 0) return;
  impl_->run([&] {
    switch (chooseAlgorithm(count, type, op, options)) {
      case Algorithm::kRing: coll::allReduceRing(impl_->ctx(), send, recv, count, type, op)->run(); break;
      case Algorithm::kHierarchical: {
        coll::Context& ctx = impl_->ctx();
        coll::CodecChoice codec;
        codec.codec = options.codec.value_or(ctx.settings().codec);
        if (static_cast<int>(codec.codec) >= kNumCodecs)
          throw Error(ErrorCategory::kInvalidUsage, "allReduce: invalid codec " +
                                                        std::to_string(static_cast<int>(codec.codec)));
        codec.errorFeedback = options.errorFeedback.value_or(ctx.settings().errorFeedback);
        codec.key = !options.errorFeedbackKey.empty() ? options.errorFeedbackKey
                                                       : coll::defaultErrorFeedbackKey(count, type);
        const coll::WanCounters before = ctx.wanCounters();
        coll::allReduceHierarchical(ctx, send, recv, count, type, op, codec)->run();
        impl_->logCodec(coll::effectiveCodec(ctx, codec.codec, type, op), before, ctx.wanCounters());
        break;
      }
      case Algorithm::kLatency: coll::allReduceLatency(impl_->ctx(), send, recv, count, type, op)->run(); break;
      default:
        throw Error(ErrorCategory::kInvalidUsage,
                    "allReduce: invalid algorithm " + std::to_string(static_cast<int>(options.algorithm)));
    }
  });
}

void Communicator::reduceScatter(const void* send, void* recv, size_t recvCount, DataType type,
                                 ReduceOp op) {
  checkCount("reduceScatter", recvCount, type, send, recv, static_cast<size_t>(size()));
  coll::checkReduction("reduceScatter", static_cast<int>(type), static_cast<int>(op));
  if (recvCount == 0) return;
  impl_->run([&] { coll::reduceScatterRing(impl_->ctx(), send, recv, recvCount, type, op)->run(); });
}

void Communicator::allGather(const void* send, void* recv, size_t sendCount, DataType type) {
  checkCount("allGather", sendCount, type, send, recv, static_cast<size_t>(size()));
  if (sendCount == 0) return;
  impl_->run([&] { coll::allGatherRing(impl_->ctx(), send, recv, sendCount, type)->run(); });
}

void Communicator::broadcast(const void* send, void* recv, size_t count, DataType type, int root) {
  if (root < 0 || root >= size())
    throw Error(ErrorCategory::kInvalidUsage, "broadcast: root " + std::to_string(root) +
                                                  " is not a rank of this communicator (0.." +
                                                  std::to_string(size() - 1) + ")");
  checkCount("broadcast", count, type, rank() == root ? send : recv, recv);
  if (count == 0) return;
  impl_->run([&] { coll::broadcastTree(impl_->ctx(), send, recv, count, type, root)->run(); });
}

void Communicator::resetErrorFeedback() { impl_->ctx().errorFeedback().resetAll(); }
void Communicator::resetErrorFeedback(const std::string& key) { impl_->ctx().errorFeedback().reset(key); }
void Communicator::dropErrorFeedback() { impl_->ctx().errorFeedback().dropAll(); }
void Communicator::dropErrorFeedback(const std::string& key) { impl_->ctx().errorFeedback().drop(key); }
size_t Communicator::errorFeedbackBytes() const { return impl_->ctx().errorFeedback().bytes(); }
WanStats Communicator::wanStats() const {
  const auto& c = impl_->ctx().wanCounters();
  return WanStats{c.raw, c.wire};
}

void Communicator::barrier() {
  uint8_t in = 0, out = 0;
  impl_->run([&] { coll::allReduceLatency(impl_->ctx(), &in, &out, 1, DataType::kUint8, ReduceOp::kMax)->run(); });
}

}  // namespace xsite
