// The per-element reduction kernels on host memory. kAvg reduces as a sum; the owner of the
// final value divides once (divideInPlace) so every rank ends with the same bytes.
#pragma once

#include <cstddef>
#include <string>

#include "xsite/types.h"

namespace xsite::coll {

// Throws Error(kInvalidUsage), naming `what`, unless `type` and `op` are values of DataType and
// ReduceOp (NCCL's values are the same) and `type` is one the kernels reduce: the check of the
// public API and of CollNet alike.
void checkReduction(const char* what, int type, int op);
// The error-feedback residual's key of a reduction whose caller names none: one per count and
// type (the public API's and CollNet's default).
std::string defaultErrorFeedbackKey(size_t count, DataType type);

// out[i] = a[i] op b[i]; out may alias a or b. Types must be reducible.
void reduce(void* out, const void* a, const void* b, size_t count, DataType type, ReduceOp op) noexcept;
// buf[i] /= divisor (integer types truncate toward zero).
void divideInPlace(void* buf, size_t count, DataType type, int divisor) noexcept;

}  // namespace xsite::coll
