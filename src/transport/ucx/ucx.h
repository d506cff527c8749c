// UCX backend (Backend::kUcx): the site transport between domains. One UCP context and worker per
// Fabric (one progress engine per communicator), one endpoint per peer created from the peer's
// worker address (exchanged through the bootstrap store), and one ordered Connection per
// (peer, channel) carried by UCP tagged messages:
//
//   tag = kind (2 bits) | sender rank (22) | channel (8) | message tag (32)
//
// A receive matches kind, sender and channel exactly and reports the message tag, so UCP's
// in-order tag matching per sender endpoint keeps each (peer, channel) an ordered stream; UCX
// reports each message's length (transport::Arrival, and the mismatch error). UCX picks the
// protocol (eager for small messages, rendezvous / zero-copy for large ones) and caches
// registrations itself (its rcache).
//
// Compiled only when xsite is built with UCX (XSITE_HAVE_UCX); UCX_* variables reach UCX untouched.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bootstrap/store.h"
#include "transport/transport.h"

namespace xsite::transport::ucx {

struct LinkSpec {
  int peer;
  int channel;
  std::string label;
};

// Collective among the ranks named in `links` (pairwise through the store, so a rank without UCX
// links takes no part): creates this rank's worker, publishes its address under
// `prefix`/ucx-addr/<rank>, connects to every peer and exchanges one hello with each, so that every
// endpoint is wired up when this returns. Returns one connection per link, in order; they share the
// worker, which lives until the last of them is destroyed. Throws Error (kTimeout naming the
// silent peers, kSystem for a UCX failure). `netDevices`, when not empty, restricts UCX to those
// devices (UCX_NET_DEVICES syntax, e.g. "mlx5_0:1"); empty leaves UCX's configuration as it is.
std::vector<std::unique_ptr<Connection>> establish(int rank, bootstrap::Store& store,
                                                   const std::string& prefix,
                                                   const std::vector<LinkSpec>& links,
                                                   std::chrono::milliseconds timeout,
                                                   const std::string& netDevices = "");

// "UCX 1.13.1" (the library found at run time).
std::string version();

}  // namespace xsite::transport::ucx
