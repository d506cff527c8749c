// The collectives on host buffers, one function per collective x algorithm. Callers (the API
// layer) validate arguments first; these assume every rank passes the same count, type and op.
#pragma once

#include <cstddef>

#include "coll/context.h"

namespace xsite::coll {

void allReduceRing(Context& ctx, const void* send, void* recv, size_t count, DataType type, ReduceOp op);
// The cross-site stage runs `codec` (an exact ring when it is kNone or does not apply to the
// type and op: lossy codecs need a sum or average of floating-point values); returns the codec
// that ran.
// The codec the hierarchical schedule's cross-site stage runs for this call (kNone: exact).
compress::CodecId effectiveCodec(const Context& ctx, compress::CodecId requested, DataType type,
                                 ReduceOp op);
compress::CodecId allReduceHierarchical(Context& ctx, const void* send, void* recv, size_t count, DataType type,
                           ReduceOp op, const CodecChoice& codec = {});
void allReduceLatency(Context& ctx, const void* send, void* recv, size_t count, DataType type, ReduceOp op);

// send holds size()*recvCount elements; this rank's reduced block lands in recv.
void reduceScatterRing(Context& ctx, const void* send, void* recv, size_t recvCount, DataType type,
                       ReduceOp op);
// recv receives size()*sendCount elements, rank r's at r*sendCount.
void allGatherRing(Context& ctx, const void* send, void* recv, size_t sendCount, DataType type);
// Site leaders, then domain leaders, then members, each level a star, pipelined by chunk.
void broadcastTree(Context& ctx, const void* send, void* recv, size_t count, DataType type, int root);

// The algorithm an all-reduce of `count` elements runs: `requested` unless it is kAuto, in which
// case the cost model picks, counting the compression `codec` would give the hierarchical path.
Algorithm resolveAlgorithm(const Context& ctx, Algorithm requested, size_t count, DataType type,
                           ReduceOp op, compress::CodecId codec);

// Chunks of at most chunkBytes for a buffer of count elements (at least one).
int chunkCount(const Context& ctx, size_t count, DataType type);

// Lanes of a cross-site stage (chunks in flight) when each chunk puts `laneWireBytes` on the WAN
// per rank and `ranksPerSite` ranks share the link: XSITE_WAN_LANES when set, else enough that
// the ranks together keep kLaneBdpFactor bandwidth-delay products in flight, and no more
// (more only overfills the bottleneck's queue).
int wanLaneCount(const Context& ctx, size_t messageBytes, double laneWireBytes, int ranksPerSite);

}  // namespace xsite::coll
