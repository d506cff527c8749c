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

}  // namespace xsite::coll
