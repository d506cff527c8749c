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

// v10 and v9 share a layout.
inline void toV10(const ncclNetProperties_v11_t& p, ncclNetProperties_v10_t* out) {
  out->name = p.name;
  out->pciPath = p.pciPath;
  out->guid = p.guid;
  out->ptrSupport = p.ptrSupport;
  out->regIsGlobal = p.regIsGlobal;
  out->forceFlush = p.forceFlush;
  out->speed = p.speed;
  out->port = p.port;
  out->latency = p.latency;
  out->maxComms = p.maxComms;
  out->maxRecvs = p.maxRecvs;
  out->netDeviceType = p.netDeviceType;
  out->netDeviceVersion = p.netDeviceVersion;
  out->vProps = p.vProps;
  out->maxP2pBytes = p.maxP2pBytes;
  out->maxCollBytes = p.maxCollBytes;
}

inline void toV8(const ncclNetProperties_v11_t& p, ncclNetProperties_v8_t* out) {
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

}  // namespace xsite::plugin
