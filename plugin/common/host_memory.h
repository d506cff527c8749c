// Memory registration for host buffers, shared by net and CollNet: both report ptrSupport HOST
// only, so a registration records the range and anything else is refused.
#pragma once

#include <cstddef>

#include "util/status.h"

namespace xsite::plugin {

// `what` names the caller in messages ("net regMr", "CollNet regMr").
Status registerHostMemory(void* data, size_t size, int type, void** mhandle, const char* what);
Status deregisterHostMemory(void* mhandle, const char* what);

}  // namespace xsite::plugin
