// What a communicator runs with, read once from the params registry (docs/configuration.md):
// shared by the public API (xsite::Communicator) and the NCCL plugin's CollNet, so both read
// every variable the same way and reject a bad value with the same message.
#pragma once

#include "coll/context.h"
#include "util/params.h"
#include "xsite/communicator.h"

namespace xsite::coll {

// Collective settings; a field set in `overrides` wins over its variable. Throws
// Error(kInvalidUsage) naming the variable on a bad value.
Settings settingsFromParams(const params::Params& p, const Config& overrides = {});

// The transport of each kind of link (XSITE_DOMAIN_TRANSPORT, XSITE_SITE_TRANSPORT,
// XSITE_WAN_TRANSPORT) and the fabric's options (shared-memory rings, socket buffers, WAN
// streams); the caller sets prefix, listenIp, job and timeout.
struct LinkSetup {
  transport::FabricOptions fabric;
  BackendChoice backends;
};
LinkSetup linkSetupFromParams(const params::Params& p);

// The settings every rank must share for their schedules to match (chunk and slice sizes, WAN
// lanes, algorithm, codec, and the links the cost model believes in, which decide `auto` and the
// lane count), as "VARIABLE=value ..." so that a disagreement can be named.
std::string scheduleSignature(const Settings& s);
// Throws Error(kInvalidUsage) naming the first variable on which rank `peer`'s signature
// differs from rank `me`'s.
void checkSameSchedule(const std::string& mine, int me, const std::string& theirs, int peer);
// "domain shm, site ucx, between sites wan"
std::string describe(const BackendChoice& backends);

}  // namespace xsite::coll
