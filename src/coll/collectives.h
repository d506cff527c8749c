// The collectives on host buffers, one function per collective x algorithm. Callers (the API
// layer) validate arguments first; these assume every rank passes the same count, type and op.
// Each returns the collective as an Operation (pipeline.h), started: run() it to the end, or
// step() it from a progress loop of the caller's. The buffers must stay valid until it is done,
// and one context runs one operation at a time.
#pragma once

#include <cstddef>
#include <memory>

#include "coll/context.h"
#include "coll/pipeline.h"

namespace xsite::coll {

std::unique_ptr<Operation> allReduceRing(Context& ctx, const void* send, void* recv, size_t count,
                                         DataType type, ReduceOp op);
// The codec the hierarchical schedule's cross-site stage runs for this call (kNone: exact):
// `requested` unless it does not apply to the type and op (lossy codecs need a sum or average
// of floating-point values) or the topology.
compress::CodecId effectiveCodec(const Context& ctx, compress::CodecId requested, DataType type,
                                 ReduceOp op);
// The cross-site stage runs effectiveCodec(codec.codec): with none, an exact ring or exchange.
std::unique_ptr<Operation> allReduceHierarchical(Context& ctx, const void* send, void* recv,
                                                 size_t count, DataType type, ReduceOp op,
                                                 const CodecChoice& codec = {});
std::unique_ptr<Operation> allReduceLatency(Context& ctx, const void* send, void* recv, size_t count,
                                            DataType type, ReduceOp op);

// send holds size()*recvCount elements; this rank's reduced block lands in recv.
std::unique_ptr<Operation> reduceScatterRing(Context& ctx, const void* send, void* recv,
                                             size_t recvCount, DataType type, ReduceOp op);
// recv receives size()*sendCount elements, rank r's at r*sendCount.
std::unique_ptr<Operation> allGatherRing(Context& ctx, const void* send, void* recv,
                                         size_t sendCount, DataType type);
// Site leaders, then domain leaders, then members, each level a star, pipelined by chunk.
std::unique_ptr<Operation> broadcastTree(Context& ctx, const void* send, void* recv, size_t count,
                                         DataType type, int root);

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
