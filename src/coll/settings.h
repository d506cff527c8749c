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

// The version of everything xsite puts on the wire between ranks (transport frames and
// handshakes, stage and codec headers): bump it with any change to those bytes, so that ranks of
// builds that could not talk to each other refuse at start (checkSameSchedule) instead of
// misreading each other's bytes.
constexpr int kWireProtocolVersion = 3;

// What every rank must share for their schedules and their bytes on the wire to match: the xsite
// version and wire protocol first, then the settings (chunk and slice sizes, WAN lanes,
// algorithm, codec, the links the cost model believes in, which decide `auto` and the lane count,
// and each kind of link's effective transport, WAN streams and frame size), as
// "xsite=VERSION/WIRE VARIABLE=value ..." so that a disagreement can be named.
std::string scheduleSignature(const Settings& s, const LinkSetup& links);
// Throws Error(kInvalidUsage) naming the xsite versions, or else the first variable, on which
// rank `peer`'s signature differs from rank `me`'s.
void checkSameSchedule(const std::string& mine, int me, const std::string& theirs, int peer);
// "domain shm, site ucx, between sites wan"
std::string describe(const BackendChoice& backends);

}  // namespace xsite::coll
