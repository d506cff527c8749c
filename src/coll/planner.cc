#include <algorithm>

#include "coll/collectives.h"

namespace xsite::coll {

Algorithm resolveAlgorithm(const Context& ctx, Algorithm requested, size_t count, DataType type,
                           ReduceOp op, compress::CodecId codec) {
  if (requested != Algorithm::kAuto) return requested;
  const double ratio = compress::nominalRatio(effectiveCodec(ctx, codec, type, op), type,
                                              ctx.settings().codecOptions.blockSize);
  return ctx.settings().costModel.choose(count * dataTypeSize(type), ctx.topology(), ratio);
}

int chunkCount(const Context& ctx, size_t count, DataType type) {
  size_t chunkElems = std::max<size_t>(1, ctx.settings().chunkBytes / dataTypeSize(type));
  return static_cast<int>(std::max<size_t>(1, (count + chunkElems - 1) / chunkElems));
}

// Measured on the emulated links (bench/lanes.sh): one lane per rank fills a 5.5 ms, 1 Gbit/s
// link (two already overfill its queue), while 40 ms with 0.1% loss wants all eight; three
// products in flight separate the two, loss recovery stalls included.
constexpr double kLaneBdpFactor = 3;

int wanLaneCount(const Context& ctx, size_t messageBytes, double laneWireBytes, int ranksPerSite) {
  const Settings& s = ctx.settings();
  if (s.wanLanes > 0) return s.wanLanes;
  const double window = laneWireBytes * std::max(ranksPerSite, 1) / kLaneBdpFactor;
  return s.costModel.pipelines(messageBytes, ctx.topology(), window, kMaxWanLanes);
}

}  // namespace xsite::coll
