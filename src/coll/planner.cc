#include <algorithm>

#include "coll/collectives.h"

namespace xsite::coll {

Algorithm resolveAlgorithm(const Context& ctx, Algorithm requested, size_t bytes) {
  if (requested != Algorithm::kAuto) return requested;
  return ctx.settings().costModel.choose(bytes, ctx.topology());
}

int chunkCount(const Context& ctx, size_t count, DataType type) {
  size_t chunkElems = std::max<size_t>(1, ctx.settings().chunkBytes / dataTypeSize(type));
  return static_cast<int>(std::max<size_t>(1, (count + chunkElems - 1) / chunkElems));
}

}  // namespace xsite::coll
