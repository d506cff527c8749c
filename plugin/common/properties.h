// The older property structs, filled from the v11 one: net and CollNet report the same devices,
// so their v10/v9/v8 shims share these.
#pragma once

#include <cstddef>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/net_v8.h"

namespace xsite::plugin {

static_assert(offsetof(ncclNetProperties_v11_t, maxMultiRequestSize) == sizeof(ncclNetProperties_v10_t),
              "v11 properties = v10 + maxMultiRequestSize");

// The fields every older version has (v8 onwards), by name.
template <typename Old>
void copyCommonProperties(const ncclNetProperties_v11_t& p, Old* out) {
  out->name = p.name;
  out->pciPath = p.pciPath;
  out->guid = p.guid;
  out->ptrSupport = p.ptrSupport;
  out->regIsGlobal = p.regIsGlobal;
  out->speed = p.speed;
  out->port = p.port;
  out->latency = p.latency;
  out->maxComms = p.maxComms;
  out->maxRecvs = p.maxRecvs;
  out->netDeviceType = p.netDeviceType;
  out->netDeviceVersion = p.netDeviceVersion;
}

// v10 and v9 share a layout: v8's fields plus forceFlush, vProps and the size limits.
inline void toV10(const ncclNetProperties_v11_t& p, ncclNetProperties_v10_t* out) {
  copyCommonProperties(p, out);
  out->forceFlush = p.forceFlush;
  out->vProps = p.vProps;
  out->maxP2pBytes = p.maxP2pBytes;
  out->maxCollBytes = p.maxCollBytes;
}

inline void toV8(const ncclNetProperties_v11_t& p, ncclNetProperties_v8_t* out) {
  copyCommonProperties(p, out);
}

}  // namespace xsite::plugin
