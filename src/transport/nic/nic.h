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
#include <map>
#include <optional>
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

// An interface as the kernel reports it now, in this process's network namespace (getifaddrs:
// netlink). Its flags are the ones `ip link` shows, IFF_RUNNING included (carrier: a TUN device
// runs while a process holds it open), which sysfs's `flags` file never holds.
struct LinkState {
  std::string name;
  unsigned flags = 0;       // IFF_*
  bool hasAddress = false;  // an IPv4 or IPv6 address
};
std::vector<LinkState> liveLinks();  // sorted by name

// The IP branch: every interface of `links` but loopback, up or not, sorted by name. Up means
// IFF_UP and IFF_RUNNING, whatever the operstate (tun, wireguard, gre and ipip devices stay in
// "unknown"). Speed, PCI function, NUMA node and link layer come from <sysfsRoot>/class/net when
// it has the interface (sysfs shows the namespace it was mounted in, so it may not).
std::vector<NicInfo> scanNetInterfaces(const std::vector<LinkState>& links,
                                       const std::string& sysfsRoot = "/sys");

// The PCI function a sysfs device path lies under: the deepest component named like
// "0000:00:03.0" ("/sys/devices/pci0000:00/0000:00:03.0/virtio2" -> ".../0000:00:03.0"); "" if
// none.
std::string pciFunctionPath(const std::string& devicePath);

// XSITE_NICS (or, for IP interfaces, NCCL_SOCKET_IFNAME when XSITE_NICS is unset), in
// NCCL_SOCKET_IFNAME's syntax: "" selects every NIC that is up; "a,b" the ones that are up whose
// name, "name:port" label or netdev starts with a or b; "=a,b" exact names only; "^..." every NIC
// that is up except those ("^=..." exact).
// "eth0 up, tun0 down": every NIC of the list and whether it is up ("none" for none).
std::string describeStates(const std::vector<NicInfo>& nics);

struct NicSelection {
  std::vector<NicInfo> nics;           // the usable NICs, in discovery order
  std::vector<std::string> unmatched;  // names of the list that matched no NIC that is up
};
NicSelection selectNics(const std::vector<NicInfo>& all, const std::string& spec);

struct DiscoverOptions {
  std::string sysfsRoot = "/sys";
  bool useVerbs = true;  // false: go straight to the IP branch
  std::optional<std::vector<LinkState>> links;  // the IP branch's interfaces (unset: liveLinks())
};

struct NicDiscovery {
  NicInfo::Kind branch = NicInfo::Kind::kIp;  // which branch found the NICs
  std::string rdmaNote;                       // why there are no RDMA NICs ("" when there are)
  std::vector<NicInfo> all;                   // everything found by that branch
  NicSelection selected;                      // after XSITE_NICS and the up filter
};

// Both branches plus XSITE_NICS / NCCL_SOCKET_IFNAME. Logs (NET, INFO) which branch it used and
// why, once per process; warns about names that match nothing and, naming every NIC found and
// its state, when no NIC is usable.
NicDiscovery discoverNics(const params::Params& params, const DiscoverOptions& options = {});

// NCCL_SOCKET_FAMILY: AF_INET, AF_INET6, or AF_UNSPEC when unset; throws kInvalidUsage naming a
// value it does not know.
int addressFamily(const params::Params& params);
// "127.0.0.1", or "::1" under NCCL_SOCKET_FAMILY=AF_INET6.
std::string loopbackAddress(const params::Params& params);
// Interface name -> its address, in this process's network namespace (getifaddrs): the first
// IPv4 one, else the first global IPv6 one (link-local addresses need a scope id and are left
// out); NCCL_SOCKET_FAMILY keeps to one family.
std::map<std::string, std::string> addressByInterface(const params::Params& params);

// Every interface but loopback, its address and whether it is usable or why not (down, not
// selected by XSITE_NICS / NCCL_SOCKET_IFNAME, no address of NCCL_SOCKET_FAMILY): for error
// messages.
std::string describeCandidates(const params::Params& params);

// Where the library's data listener goes when the user named interfaces (XSITE_NICS, else
// NCCL_SOCKET_IFNAME) or an address family (NCCL_SOCKET_FAMILY), and not an address
// (XSITE_LISTEN_ADDR): the address (addressByInterface)
// of the first selected interface that has one (for an RDMA port, its netdev's), or loopback
// when the list names it (a job on one host). "" when none of the three is set,
// or when XSITE_NICS selects RDMA ports without an IPv4 netdev: the caller keeps its own choice.
// Throws kInvalidUsage, naming every interface it saw and its state, when the list selects no
// interface with an address.
std::string listenIpFromNics(const params::Params& params);

// The UCX_NET_DEVICES entry that pins UCX to `nic`: "mlx5_0:1" for an RDMA port; "" for an IP
// interface (UCX's TCP transport then keeps its own choice, which routes to every peer).
std::string ucxNetDevice(const NicInfo& nic);

}  // namespace xsite::transport::nic
