// The exported tuner tables: ncclTunerPlugin_v5 over the one implementation (tuner.h), v4 and
// v3 as thin shims. The tuner never fails NCCL: init declines with a null context (NCCL's costs
// are then left alone), and getCollInfo logs a failure once and returns success.
#include "plugin/abi/tuner.h"
#include "plugin/common/export.h"
#include "plugin/common/guard.h"
#include "plugin/tuner/tuner.h"

namespace xsite::plugin::tuner {
namespace {

ncclResult_t v5Init(void** ctx, uint64_t /*commId*/, size_t nRanks, size_t nNodes,
                    ncclDebugLogger_t logger, ncclNvlDomainInfo_v5_t* /*nvl*/,
                    ncclTunerConstants_v5_t* constants) noexcept {
  if (ctx == nullptr) return ncclSuccess;
  *ctx = nullptr;
  installLogger(logger);
  // An error here would fail communicator creation: report it, then decline.
  (void)guard("tuner init", [&] { *ctx = create(nRanks, nNodes, constants).release(); });
  return ncclSuccess;
}

ncclResult_t v5GetCollInfo(void* ctx, ncclFunc_t collType, size_t nBytes, int /*numPipeOps*/,
                           float** collCostTable, int numAlgo, int numProto, int /*regBuff*/,
                           int* nChannels) noexcept {
  if (ctx == nullptr || collCostTable == nullptr) return ncclSuccess;  // declined
  (void)guard("tuner getCollInfo", [&] {
    // NCCL passes a contiguous float[numAlgo][numProto] cast to float**.
    float* table = reinterpret_cast<float*>(collCostTable);
    static_cast<const Tuner*>(ctx)->apply(collType, nBytes, table, numAlgo, numProto, nChannels);
  });
  return ncclSuccess;
}

ncclResult_t v5Finalize(void* ctx) noexcept {
  delete static_cast<Tuner*>(ctx);
  return ncclSuccess;
}

ncclResult_t v4Init(size_t nRanks, size_t nNodes, ncclDebugLogger_t logger, void** ctx) noexcept {
  return v5Init(ctx, 0, nRanks, nNodes, logger, nullptr, nullptr);
}

ncclResult_t v3GetCollInfo(void* ctx, ncclFunc_t collType, size_t nBytes, int numPipeOps,
                           float** collCostTable, int numAlgo, int numProto,
                           int* nChannels) noexcept {
  return v5GetCollInfo(ctx, collType, nBytes, numPipeOps, collCostTable, numAlgo, numProto, 0,
                       nChannels);
}

}  // namespace
}  // namespace xsite::plugin::tuner

using namespace xsite::plugin::tuner;  // NOLINT: the tables below name the shims

extern "C" {
XSITE_EXPORT ncclTuner_v5_t ncclTunerPlugin_v5 = {"xsite", v5Init, v5GetCollInfo, v5Finalize};
XSITE_EXPORT ncclTuner_v4_t ncclTunerPlugin_v4 = {"xsite", v4Init, v5GetCollInfo, v5Finalize};
XSITE_EXPORT ncclTuner_v3_t ncclTunerPlugin_v3 = {"xsite", v4Init, v3GetCollInfo, v5Finalize};
}

static_assert(sizeof(ncclTuner_v5_t) == 4 * sizeof(void*), "tuner v5: name + 3 entry points");
static_assert(sizeof(ncclTunerConstants_v5_t) == sizeof(double) * (7 * 3 + 3 * 7 * 3 + 5 * 4 * 3),
              "tuner v5 constants: 21 + 63 + 60 doubles");
