// The net plugin's devices (NIC discovery, src/transport/nic): RDMA ports when same-site comms go
// over UCX and the host has some, IP interfaces otherwise; each with the IPv4 address its
// listeners bind to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plugin/abi/net_v11.h"

namespace xsite::params {
class Params;
}

namespace xsite::plugin::net {

// Reported when a link's speed is unknown (virtual interfaces): NCCL's own default for <= 0.
inline constexpr int kDefaultSpeedMbps = 10000;
// Grouped receives: up to this many buffers per irecv, matched by tag (NCCL_ABI.md §2.2).
inline constexpr int kMaxRecvs = 8;
// Largest single isend/irecv: test() reports sizes as int, so stay well inside it.
inline constexpr size_t kMaxP2pBytes = size_t{1} << 30;
// The net's maxCollBytes property: the value NCCL's Socket net reports.
inline constexpr size_t kMaxCollBytes = size_t{512} << 20;
inline constexpr int kMaxComms = 65536;

struct Device {
  std::string name;     // interface name ("eth0") or RDMA port ("mlx5_0:1")
  std::string pciPath;  // "" for a virtual interface
  std::string ip;       // dotted IPv4 the listeners bind to
  int speedMbps = 0;    // 0: unknown (kDefaultSpeedMbps is reported)
  uint64_t guid = 0;
  std::string ucxNetDevice;  // "mlx5_0:1": UCX comms of this device are pinned to it; "" for IP
  bool fallback = false;     // loopback, because no interface was usable (not a choice)
};

// With same-site comms over UCX (sameSiteOverUcx): RDMA ports that NIC discovery finds through libibverbs are
// the devices ("mlx5_0:1", node GUID, PCI path, link speed), their UCX comms pinned to the port;
// the setup socket binds to the port's netdev address (else another interface's). Otherwise, or
// where there is no RDMA NIC: IP interfaces.
// XSITE_LISTEN_ADDR set: the one interface holding that address (127.0.0.1 -> "lo"; an RDMA port
// whose netdev it is). Otherwise every NIC discovery selects (XSITE_NICS) that is up and has an
// IPv4 address; when none has one, the loopback interface, with a warning (such a device reaches
// this host only).
std::vector<Device> discoverDevices(const params::Params& params);
// discoverDevices(Params::global()) once per process: the net and CollNet both report this list
// (NCCL needs them the same), and NIC discovery runs once.
const std::vector<Device>& processDevices();

// XSITE_SITE_TRANSPORT as the library reads it (transport::sameSiteBackend, which throws
// Error(kInvalidUsage) for ucx in a build without UCX): ucx, or auto with UCX -> true.
bool sameSiteOverUcx(const params::Params& params);

// The v11 properties of one device, filled truthfully; `name`/`pciPath` point into `device`.
void fillProperties(const Device& device, int index, ncclNetProperties_v11_t* props);
// devices[dev]; an index NCCL should never pass is Error(kInternal) naming `who` ("net").
const Device& deviceAt(const std::vector<Device>& devices, int dev, const char* who);

}  // namespace xsite::plugin::net
