// NIC discovery: the pure conversion of verbs records, the IP branch (the kernel's interfaces,
// details from sysfs), XSITE_NICS.
// The libibverbs scan itself is verbs.cc.
#include "transport/nic/nic.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <endian.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>

#include "transport/nic/sysfs.h"
#include "util/log.h"
#include "util/params.h"
#include "util/status.h"

namespace xsite::transport::nic {

namespace {

// ibv_port_attr.active_speed code -> nominal Mbit/s per lane, as the kernel's sysfs "rate" and
// NCCL report them. XDR (256) does not fit active_speed; newer rdma-core reports it in
// active_speed_ex, which rdma-core 44 lacks: a record may carry it all the same.
struct CodeValue {
  int code, value;
};
constexpr CodeValue kLaneMbps[] = {
    {1, 2500},   {2, 5000},     {4, 10000},     // SDR, DDR, QDR
    {8, 10000},  {16, 14000},   {32, 25000},    // FDR10, FDR, EDR
    {64, 50000}, {128, 100000}, {256, 200000},  // HDR, NDR, XDR
};
// ibv_port_attr.active_width code -> lanes (1x, 4x, 8x, 12x, 2x).
constexpr CodeValue kLanes[] = {{1, 1}, {2, 4}, {4, 8}, {8, 12}, {16, 2}};

template <size_t N>
int lookup(const CodeValue (&table)[N], int code) {  // 0 for a code it does not know
  for (const auto& e : table)
    if (e.code == code) return e.value;
  return 0;
}

const char* portStateName(int state) {  // enum ibv_port_state
  static const char* const kNames[] = {"NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER"};
  return state >= 0 && state <= 5 ? kNames[state] : "NOP";
}

constexpr int kPortActive = 4;         // IBV_PORT_ACTIVE
constexpr int kLinkLayerEthernet = 2;  // IBV_LINK_LAYER_ETHERNET (0, unspecified, means IB)

bool isPciAddress(const std::string& s) {
  // dddd:bb:dd.f, hex digits
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11})
    if (!isxdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

int parseIntOr(const std::string& text, int fallback) {
  if (text.empty()) return fallback;
  char* end = nullptr;
  long v = strtol(text.c_str(), &end, 0);
  return (end && *end == '\0') ? static_cast<int>(v) : fallback;
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

// NCCL_SOCKET_IFNAME's rule: `name` is a prefix of the NIC's name, its "name:port" label or its
// netdev, or (exact) equal to one of them.
bool matches(const NicInfo& nic, const std::string& name, bool exact) {
  for (const std::string* s : {&nic.name, &nic.netdev}) {
    if (s->empty()) continue;
    if (exact ? *s == name : s->compare(0, name.size(), name) == 0) return true;
  }
  const std::string label = nic.label();
  return exact ? label == name : label.compare(0, name.size(), name) == 0;
}

std::string describeList(const std::vector<NicInfo>& nics) {
  if (nics.empty()) return "(none)";
  std::string out;
  for (const auto& n : nics) {
    if (!out.empty()) out += ", ";
    out += n.label();
    out += n.speedMbps > 0 ? " (" + std::to_string(n.speedMbps) + " Mbps)" : " (speed unknown)";
  }
  return out;
}

}  // namespace

namespace sysfs {

std::string line(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text)) return "";
  while (!text.empty() && isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

std::string realPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

std::vector<std::string> list(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (!dir) return names;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace sysfs

std::string NicInfo::label() const {
  return kind == Kind::kRdma ? name + ":" + std::to_string(port) : name;
}

std::string ucxNetDevice(const NicInfo& nic) {
  return nic.kind == NicInfo::Kind::kRdma ? nic.label() : std::string();
}

const char* kindName(NicInfo::Kind kind) noexcept {
  return kind == NicInfo::Kind::kRdma ? "rdma" : "ip";
}

std::string formatGuid(uint64_t guid) {
  char buf[24];
  snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(guid));
  return buf;
}

int ibLinkSpeedMbps(int activeWidth, int activeSpeed) noexcept {
  return lookup(kLanes, activeWidth) * lookup(kLaneMbps, activeSpeed);
}

std::vector<NicInfo> nicsFromRecords(const std::vector<VerbsDeviceRecord>& records) {
  std::vector<NicInfo> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    NicInfo n;
    n.name = r.name;
    n.kind = NicInfo::Kind::kRdma;
    n.guid = be64toh(r.guidBe);
    n.port = r.port;
    n.up = r.state == kPortActive;
    n.state = portStateName(r.state);
    n.speedMbps = ibLinkSpeedMbps(r.activeWidth, r.activeSpeed);
    n.pciPath = pciFunctionPath(r.devicePath);
    n.netdev = r.netdev;
    n.linkLayer = r.linkLayer == kLinkLayerEthernet ? "Ethernet" : "InfiniBand";
    n.numaNode = r.numaNode;
    out.push_back(std::move(n));
  }
  return out;
}

std::string pciFunctionPath(const std::string& devicePath) {
  std::string path = devicePath;
  while (!path.empty()) {
    auto slash = path.rfind('/');
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    if (isPciAddress(base)) return path;
    if (slash == std::string::npos || slash == 0) break;
    path.resize(slash);
  }
  return "";
}

std::vector<LinkState> liveLinks() {
  std::map<std::string, LinkState> byName;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    LinkState& l = byName[a->ifa_name];
    l.name = a->ifa_name;
    l.flags = a->ifa_flags;
    if (a->ifa_addr && (a->ifa_addr->sa_family == AF_INET || a->ifa_addr->sa_family == AF_INET6))
      l.hasAddress = true;
  }
  ::freeifaddrs(list);
  std::vector<LinkState> out;
  for (auto& [name, l] : byName) out.push_back(std::move(l));
  return out;
}

std::string loopbackAddress(const params::Params& params) {
  return addressFamily(params) == AF_INET6 ? "::1" : "127.0.0.1";
}

int addressFamily(const params::Params& params) {
  if (!params.isSet(params::Id::kNcclSocketFamily)) return AF_UNSPEC;
  const std::string& f = params.string(params::Id::kNcclSocketFamily);
  if (f == "AF_INET" || f == "4" || f == "ipv4") return AF_INET;
  if (f == "AF_INET6" || f == "6" || f == "ipv6") return AF_INET6;
  throw Error(ErrorCategory::kInvalidUsage,
              "NCCL_SOCKET_FAMILY='" + f + "' is not AF_INET or AF_INET6");
}

std::map<std::string, std::string> addressByInterface(const params::Params& params) {
  const int family = addressFamily(params);
  std::map<std::string, std::string> v4, v6;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return v4;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {0};
    if (a->ifa_addr->sa_family == AF_INET && family != AF_INET6) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof(text));
      v4.emplace(a->ifa_name, text);
    } else if (a->ifa_addr->sa_family == AF_INET6 && family != AF_INET) {
      const in6_addr& x = reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_LINKLOCAL(&x)) continue;  // needs a scope id
      ::inet_ntop(AF_INET6, &x, text, sizeof(text));
      v6.emplace(a->ifa_name, text);
    }
  }
  ::freeifaddrs(list);
  for (auto& [name, ip] : v6) v4.emplace(name, ip);  // IPv4 first where an interface has both
  return v4;
}

std::vector<NicInfo> scanNetInterfaces(const std::vector<LinkState>& links,
                                       const std::string& sysfsRoot) {
  std::vector<NicInfo> out;
  for (const LinkState& l : links) {
    if (l.flags & IFF_LOOPBACK) continue;
    const std::string dir = sysfsRoot + "/class/net/" + l.name;
    NicInfo n;
    n.name = l.name;
    n.kind = NicInfo::Kind::kIp;
    n.netdev = l.name;
    n.up = (l.flags & IFF_UP) && (l.flags & IFF_RUNNING);
    n.state = sysfs::line(dir + "/operstate");
    if (n.state.empty()) n.state = n.up ? "up" : "down";
    // virtio, tun, ifb (and veth on older kernels) report -1 or fail the read: unknown.
    n.speedMbps = std::max(0, parseIntOr(sysfs::line(dir + "/speed"), 0));
    const std::string device = sysfs::realPath(dir + "/device");
    n.pciPath = pciFunctionPath(device);
    if (!n.pciPath.empty()) n.numaNode = parseIntOr(sysfs::line(n.pciPath + "/numa_node"), -1);
    switch (parseIntOr(sysfs::line(dir + "/type"), -1)) {
      case 1:
        n.linkLayer = "Ethernet";
        break;  // ARPHRD_ETHER
      case 32:
        n.linkLayer = "InfiniBand";
        break;  // ARPHRD_INFINIBAND (IPoIB)
      default:
        break;
    }
    out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end(), [](const NicInfo& a, const NicInfo& b) { return a.name < b.name; });
  return out;
}

std::string describeStates(const std::vector<NicInfo>& nics) {
  std::string out;
  for (const auto& n : nics) out += (out.empty() ? "" : ", ") + n.label() + (n.up ? " up" : " down");
  return out.empty() ? "none" : out;
}

NicSelection selectNics(const std::vector<NicInfo>& all, const std::string& spec) {
  NicSelection sel;
  std::string list = spec;
  const bool exclude = !list.empty() && list[0] == '^';
  if (exclude) list.erase(0, 1);
  const bool exact = !list.empty() && list[0] == '=';
  if (exact) list.erase(0, 1);
  const auto names = splitList(list);
  std::vector<bool> used(names.size(), false);
  for (const auto& nic : all) {
    if (!nic.up) continue;
    bool named = false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (matches(nic, names[i], exact)) named = used[i] = true;
    }
    if (names.empty() || named != exclude) sel.nics.push_back(nic);
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (!used[i]) sel.unmatched.push_back(names[i]);
  return sel;
}

namespace {

// The list the IP branch applies: XSITE_NICS, else NCCL_SOCKET_IFNAME (NCCL users' habit);
// {name, value}.
std::pair<std::string, std::string> ipSelection(const params::Params& params) {
  if (!params.isSet(params::Id::kNics) && params.isSet(params::Id::kNcclSocketIfname))
    return {"NCCL_SOCKET_IFNAME", params.string(params::Id::kNcclSocketIfname)};
  return {"XSITE_NICS", params.string(params::Id::kNics)};
}

}  // namespace

NicDiscovery discoverNics(const params::Params& params, const DiscoverOptions& options) {
  static std::atomic<bool> logged{false};
  const bool first = !logged.exchange(true);
  const auto level = first ? log::Level::kInfo : log::Level::kDebug;

  NicDiscovery d;
  VerbsScan scan;
  if (options.useVerbs)
    scan = scanVerbs(options.sysfsRoot);
  else
    scan.note = "not asked";
  std::string spec = params.string(params::Id::kNics);
  std::string specName = "XSITE_NICS";
  if (!scan.records.empty()) {
    d.branch = NicInfo::Kind::kRdma;
    d.all = nicsFromRecords(scan.records);
    d.selected = selectNics(d.all, spec);
    if (log::enabled(level, log::kNet))
      log::write(level, log::kNet, "RDMA devices (libibverbs): using %s",
                 describeList(d.selected.nics).c_str());
  } else {
    d.branch = NicInfo::Kind::kIp;
    d.rdmaNote = scan.note;
    std::tie(specName, spec) = ipSelection(params);
    d.all = scanNetInterfaces(options.links ? *options.links : liveLinks(), options.sysfsRoot);
    d.selected = selectNics(d.all, spec);
    if (log::enabled(level, log::kNet))
      log::write(level, log::kNet, "no RDMA devices (libibverbs: %s): using IP interfaces %s",
                 scan.note.c_str(), describeList(d.selected.nics).c_str());
  }
  if (first && (spec.empty() || spec[0] != '^')) {  // "^lo,docker": absent ones are fine
    for (const auto& name : d.selected.unmatched)
      XSITE_WARN(kNet, "%s names '%s', which matches no %s NIC that is up", specName.c_str(),
                 name.c_str(), kindName(d.branch));
    if (d.selected.nics.empty())
      XSITE_WARN(kNet, "no usable NIC: %zu found (%s), none up%s", d.all.size(),
                 describeStates(d.all).c_str(),
                 spec.empty() ? "" : (" and allowed by " + specName).c_str());
  }
  return d;
}

std::string describeCandidates(const params::Params& params) {
  const auto [specName, spec] = ipSelection(params);
  const auto all = scanNetInterfaces(liveLinks());
  const auto selected = selectNics(all, spec).nics;
  const auto addrs = addressByInterface(params);
  const int family = addressFamily(params);
  std::string out;
  for (const NicInfo& nic : all) {
    auto it = addrs.find(nic.name);
    std::string why;
    if (!nic.up)
      why = "down";
    else if (std::none_of(selected.begin(), selected.end(),
                          [&](const NicInfo& s) { return s.name == nic.name; }))
      why = "not selected by " + specName + "='" + spec + "'";
    else if (it == addrs.end())
      why = family == AF_INET6 ? "no global IPv6 address (NCCL_SOCKET_FAMILY)"
            : family == AF_INET ? "no IPv4 address (NCCL_SOCKET_FAMILY)"
                                : "no address";
    out += (out.empty() ? "" : ", ") + nic.name + (it == addrs.end() ? "" : " " + it->second) +
           (why.empty() ? " (usable)" : " (" + why + ")");
  }
  return out.empty() ? "none but loopback" : out;
}

std::string listenIpFromNics(const params::Params& params) {
  if (!params.isSet(params::Id::kNics) && !params.isSet(params::Id::kNcclSocketIfname) &&
      !params.isSet(params::Id::kNcclSocketFamily))
    return "";
  const NicDiscovery d = discoverNics(params);
  const auto addrs = addressByInterface(params);
  for (const NicInfo& nic : d.selected.nics)
    if (auto it = addrs.find(nic.netdev); !nic.netdev.empty() && it != addrs.end()) return it->second;
  if (d.branch == NicInfo::Kind::kRdma) return "";
  const auto [specName, spec] = ipSelection(params);
  NicInfo lo;  // discovery never lists loopback; a list that names it asks for it (one host)
  lo.name = lo.netdev = "lo";
  lo.up = true;
  if (!spec.empty() && spec[0] != '^' && !selectNics({lo}, spec).nics.empty())
    return loopbackAddress(params);
  throw Error(ErrorCategory::kInvalidUsage,
              specName + "='" + spec + "' selects no interface that is up and has an address; "
              "this host has: " + describeCandidates(params));
}

}  // namespace xsite::transport::nic
