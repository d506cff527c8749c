// NIC discovery: which network devices this host has and which of them xsite may use.
//
// Two branches, one result type. Where libibverbs (rdma-core) is installed and lists RDMA devices,
// every port of every device is a NIC (InfiniBand or RoCE). Where it is absent or lists nothing,
// the network interfaces under /sys/class/net are (lo skipped). libibverbs is loaded at run time
// (dlopen), so xsite has no link-time dependency on it.
//
// The verbs branch is split in two: scanVerbs() asks the driver and copies what it says into plain
// VerbsDeviceRecords; nicsFromRecords() (pure) turns records into NicInfo. Tests hand records to
// the pure part; the sysfs branch takes its root as a parameter so tests point it at a tree they
// build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xsite::params {
class Params;
}

namespace xsite::transport::nic {

struct NicInfo {
  enum class Kind { kRdma, kIp };
  std::string name;  // RDMA device ("mlx5_0") or interface ("eth0")
  Kind kind = Kind::kIp;
  uint64_t guid = 0;      // node GUID in host order (RDMA); 0 for IP interfaces
  int port = 0;           // RDMA port number (1-based); 0 for IP interfaces
  bool up = false;        // port ACTIVE / interface operationally up
  std::string state;      // as the source says it: "ACTIVE", "DOWN", "up", "down", ...
  int speedMbps = 0;      // link speed; 0 when unknown (virtual interfaces)
  std::string pciPath;    // resolved sysfs path of the PCI function; "" for virtual devices
  std::string netdev;     // associated network interface ("" if none)
  std::string linkLayer;  // "InfiniBand", "Ethernet", or "" when unknown
  int numaNode = -1;      // -1 when unknown

  // "mlx5_0:1" for an RDMA port, the interface name for IP.
  std::string label() const;
};

const char* kindName(NicInfo::Kind kind) noexcept;  // "rdma" / "ip"
std::string formatGuid(uint64_t guid);              // "0x0002c90300a0b1c2"

// Link rate of an IB-style port from ibv_port_attr's active_width x active_speed codes (the
// encodings of the IB spec's PortInfo, which RoCE drivers use too); 0 for a code it does not know.
int ibLinkSpeedMbps(int activeWidth, int activeSpeed) noexcept;

// One port of one RDMA device, as libibverbs and sysfs describe it.
struct VerbsDeviceRecord {
  std::string name;     // ibv_get_device_name
  uint64_t guidBe = 0;  // ibv_get_device_guid: network (big-endian) byte order
  int port = 1;
  int state = 0;        // enum ibv_port_state
  int activeWidth = 0;  // ibv_port_attr.active_width (1 = 1x, 2 = 4x, 4 = 8x, 8 = 12x, 16 = 2x)
  int activeSpeed = 0;  // ibv_port_attr.active_speed (1 = SDR ... 64 = HDR, 128 = NDR, 256 = XDR)
  int linkLayer = 0;    // IBV_LINK_LAYER_*
  std::string devicePath;  // realpath of /sys/class/infiniband/<name>/device ("" if none)
  std::string netdev;      // first entry of <devicePath>/net, if any
  int numaNode = -1;       // <devicePath>/numa_node
};

// Pure: one NicInfo per record, in order.
std::vector<NicInfo> nicsFromRecords(const std::vector<VerbsDeviceRecord>& records);

// What the driver says. `note` explains an empty list ("libibverbs.so.1 not found: ...",
// "no devices", ...); it is empty when there are devices.
struct VerbsScan {
  std::vector<VerbsDeviceRecord> records;
  std::string note;
};
VerbsScan scanVerbs(const std::string& sysfsRoot = "/sys");

// The sysfs branch: every interface under <sysfsRoot>/class/net except lo, up or not, sorted by
// name.
std::vector<NicInfo> scanNetInterfaces(const std::string& sysfsRoot = "/sys");

// The PCI function a sysfs device path lies under: the deepest component named like
// "0000:00:03.0" ("/sys/devices/pci0000:00/0000:00:03.0/virtio2" -> ".../0000:00:03.0"); "" if
// none.
std::string pciFunctionPath(const std::string& devicePath);

// XSITE_NICS: "" selects every NIC that is up; "a,b" the named ones that are up; "^a,b" every NIC
// that is up except the named ones. A name matches a NIC's name, its "name:port" label or its
// netdev.
struct NicSelection {
  std::vector<NicInfo> nics;           // the usable NICs, in discovery order
  std::vector<std::string> unmatched;  // names of the list that matched no NIC that is up
};
NicSelection selectNics(const std::vector<NicInfo>& all, const std::string& spec);

struct DiscoverOptions {
  std::string sysfsRoot = "/sys";
  bool useVerbs = true;  // false: go straight to the sysfs branch
};

struct NicDiscovery {
  NicInfo::Kind branch = NicInfo::Kind::kIp;  // which branch found the NICs
  std::string rdmaNote;                       // why there are no RDMA NICs ("" when there are)
  std::vector<NicInfo> all;                   // everything found by that branch
  NicSelection selected;                      // after XSITE_NICS and the up filter
};

// Both branches plus XSITE_NICS. Logs (NET, INFO) which branch it used and why, once per process;
// warns about XSITE_NICS names that match nothing and when no NIC is usable.
NicDiscovery discoverNics(const params::Params& params, const DiscoverOptions& options = {});

// The UCX_NET_DEVICES entry that pins UCX to `nic`: "mlx5_0:1" for an RDMA port; "" for an IP
// interface (UCX's TCP transport then keeps its own choice, which routes to every peer).
std::string ucxNetDevice(const NicInfo& nic);

}  // namespace xsite::transport::nic
