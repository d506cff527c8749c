// NIC discovery: the verbs branch through device records (no fake driver), the sysfs branch
// through a /sys tree built in a temporary directory, XSITE_NICS, the log line, and one run of
// the real discovery on this machine.
#include "transport/nic/nic.h"

#include <endian.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "util/log.h"
#include "util/params.h"

namespace xsite::transport::nic {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> labels(const std::vector<NicInfo>& nics) {
  std::vector<std::string> out;
  for (const auto& n : nics) out.push_back(n.label());
  return out;
}

params::Params paramsWith(std::map<std::string, std::string> env) {
  return params::Params([env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

// ---- the verbs branch: records -> NicInfo ----

VerbsDeviceRecord ibHdr() {
  VerbsDeviceRecord r;
  r.name = "mlx5_0";
  r.guidBe = htobe64(0x0002c90300a0b1c2ull);  // as ibv_get_device_guid returns it
  r.port = 1;
  r.state = 4;         // IBV_PORT_ACTIVE
  r.activeWidth = 2;   // 4x
  r.activeSpeed = 64;  // HDR
  r.linkLayer = 1;     // IBV_LINK_LAYER_INFINIBAND
  r.devicePath = "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";
  r.netdev = "ib0";
  r.numaNode = 0;
  return r;
}

TEST(NicRecords, InfiniBand4xHdrIs200Gbps) {
  auto nics = nicsFromRecords({ibHdr()});
  ASSERT_EQ(nics.size(), 1u);
  const auto& n = nics[0];
  EXPECT_EQ(n.name, "mlx5_0");
  EXPECT_EQ(n.label(), "mlx5_0:1");
  EXPECT_EQ(n.kind, NicInfo::Kind::kRdma);
  EXPECT_EQ(n.guid, 0x0002c90300a0b1c2ull);  // host order, whatever the machine's
  EXPECT_EQ(formatGuid(n.guid), "0x0002c90300a0b1c2");
  EXPECT_EQ(n.port, 1);
  EXPECT_TRUE(n.up);
  EXPECT_EQ(n.state, "ACTIVE");
  EXPECT_EQ(n.speedMbps, 200000);
  EXPECT_EQ(n.linkLayer, "InfiniBand");
  EXPECT_EQ(n.pciPath, "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0");
  EXPECT_EQ(n.netdev, "ib0");
  EXPECT_EQ(n.numaNode, 0);
}

TEST(NicRecords, RoceIsRdmaOverEthernet) {
  auto r = ibHdr();
  r.name = "mlx5_1";
  r.activeSpeed = 32;  // EDR lanes: 4 x 25G = a 100G RoCE port
  r.linkLayer = 2;     // IBV_LINK_LAYER_ETHERNET
  r.netdev = "ens1f0";
  auto n = nicsFromRecords({r}).at(0);
  EXPECT_EQ(n.kind, NicInfo::Kind::kRdma);
  EXPECT_EQ(n.linkLayer, "Ethernet");
  EXPECT_EQ(n.speedMbps, 100000);
  EXPECT_EQ(n.netdev, "ens1f0");
}

TEST(NicRecords, UnspecifiedLinkLayerMeansInfiniBand) {
  auto r = ibHdr();
  r.linkLayer = 0;  // IBV_LINK_LAYER_UNSPECIFIED: old drivers, IB
  EXPECT_EQ(nicsFromRecords({r}).at(0).linkLayer, "InfiniBand");
}

TEST(NicRecords, PortDownIsNotUp) {
  auto r = ibHdr();
  r.port = 2;
  r.state = 1;  // IBV_PORT_DOWN
  r.activeWidth = r.activeSpeed = 0;
  auto n = nicsFromRecords({r}).at(0);
  EXPECT_FALSE(n.up);
  EXPECT_EQ(n.state, "DOWN");
  EXPECT_EQ(n.label(), "mlx5_0:2");
  EXPECT_EQ(n.speedMbps, 0);
  r.state = 2;  // INIT: the SM has not configured the link yet
  EXPECT_FALSE(nicsFromRecords({r}).at(0).up);
}

TEST(NicRecords, SoftwareDeviceHasNoPciPath) {
  auto r = ibHdr();
  r.name = "rxe0";
  r.devicePath = "";
  r.numaNode = -1;
  auto n = nicsFromRecords({r}).at(0);
  EXPECT_EQ(n.pciPath, "");
  EXPECT_EQ(n.numaNode, -1);
}

TEST(NicRecords, PciPathIsThePciFunction) {
  EXPECT_EQ(pciFunctionPath("/sys/devices/pci0000:00/0000:00:03.0/virtio2"),
            "/sys/devices/pci0000:00/0000:00:03.0");
  EXPECT_EQ(pciFunctionPath("/sys/devices/virtual/net/veth0"), "");
  EXPECT_EQ(pciFunctionPath(""), "");
}

TEST(NicRecords, GuidFormatting) {
  EXPECT_EQ(formatGuid(1), "0x0000000000000001");
  EXPECT_EQ(formatGuid(0xfedcba9876543210ull), "0xfedcba9876543210");
}

TEST(NicRecords, LinkSpeedTable) {
  EXPECT_EQ(ibLinkSpeedMbps(1, 1), 2500);       // 1x SDR
  EXPECT_EQ(ibLinkSpeedMbps(2, 4), 40000);      // 4x QDR
  EXPECT_EQ(ibLinkSpeedMbps(2, 8), 40000);      // 4x FDR10
  EXPECT_EQ(ibLinkSpeedMbps(2, 16), 56000);     // 4x FDR
  EXPECT_EQ(ibLinkSpeedMbps(2, 32), 100000);    // 4x EDR
  EXPECT_EQ(ibLinkSpeedMbps(8, 2), 60000);      // 12x DDR
  EXPECT_EQ(ibLinkSpeedMbps(16, 128), 200000);  // 2x NDR
  EXPECT_EQ(ibLinkSpeedMbps(2, 128), 400000);   // 4x NDR
  EXPECT_EQ(ibLinkSpeedMbps(4, 64), 400000);    // 8x HDR
  EXPECT_EQ(ibLinkSpeedMbps(3, 64), 0);         // not a width code
  EXPECT_EQ(ibLinkSpeedMbps(2, 5), 0);          // not a speed code
}

// ---- the IP branch's details: a /sys tree in a temporary directory, with the kernel's flags of
// each interface as getifaddrs would give them (the interfaces themselves are real further down)

class SysfsTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xsite-nic-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    const std::string pci = "devices/pci0000:00/0000:00:03.0";
    file(pci + "/numa_node", "1");
    fs::create_directories(root_ + "/" + pci + "/virtio2");
    file("devices/pci0000:00/0000:00:04.0/numa_node", "-1");
    // a physical NIC behind virtio, with a speed
    iface("eth0", "up", "25000", "0x1003");
    link("eth0", "../../../" + pci + "/virtio2");
    // a physical NIC whose link is down
    iface("eth1", "down", "", "0x1002");
    link("eth1", "../../../devices/pci0000:00/0000:00:04.0");
    // a veth: no device, speed unreadable
    iface("veth0", "up", "", "0x1003");
    // a tun: operstate stays "unknown" but it is UP and RUNNING
    iface("tun0", "unknown", "", "0x10d1");
    // loopback: skipped
    iface("lo", "unknown", "", "0x9");
    file("class/net/bonding_masters", "");
  }
  void TearDown() override { fs::remove_all(root_); }

  void file(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text << "\n";
  }
  void iface(const std::string& name, const std::string& state, const std::string& speed,
             const std::string& flags) {
    file("class/net/" + name + "/operstate", state);
    file("class/net/" + name + "/flags", flags);
    file("class/net/" + name + "/type", name == "lo" ? "772" : "1");
    if (!speed.empty()) file("class/net/" + name + "/speed", speed);
  }
  void link(const std::string& name, const std::string& target) {
    fs::create_directory_symlink(target, root_ + "/class/net/" + name + "/device");
  }
  // What the kernel says of the tree's interfaces: eth1 has no carrier, tun0 is held open.
  std::vector<LinkState> links() const {
    return {{"eth0", IFF_UP | IFF_RUNNING | IFF_BROADCAST, true},
            {"eth1", IFF_UP | IFF_BROADCAST, false},
            {"lo", IFF_UP | IFF_RUNNING | IFF_LOOPBACK, true},
            {"tun0", IFF_UP | IFF_RUNNING | IFF_POINTOPOINT, true},
            {"veth0", IFF_UP | IFF_RUNNING | IFF_BROADCAST, true}};
  }
  std::vector<NicInfo> scan() const { return scanNetInterfaces(links(), root_); }

  std::string root_;
};

TEST_F(SysfsTree, ListsInterfacesButLoopback) {
  auto nics = scan();
  EXPECT_THAT(labels(nics), ElementsAre("eth0", "eth1", "tun0", "veth0"));
}

TEST_F(SysfsTree, PhysicalInterfaceHasPciPathSpeedAndNuma) {
  auto eth0 = scan().at(0);
  EXPECT_EQ(eth0.kind, NicInfo::Kind::kIp);
  EXPECT_TRUE(eth0.up);
  EXPECT_EQ(eth0.state, "up");
  EXPECT_EQ(eth0.speedMbps, 25000);
  EXPECT_EQ(eth0.pciPath, fs::canonical(root_).string() + "/devices/pci0000:00/0000:00:03.0");
  EXPECT_EQ(eth0.numaNode, 1);
  EXPECT_EQ(eth0.netdev, "eth0");
  EXPECT_EQ(eth0.linkLayer, "Ethernet");
  EXPECT_EQ(eth0.guid, 0u);
  EXPECT_EQ(eth0.port, 0);
}

TEST_F(SysfsTree, VirtualInterfaceHasNoPciPathAndUnknownSpeed) {
  auto nics = scan();
  const auto& veth = nics.at(3);
  ASSERT_EQ(veth.name, "veth0");
  EXPECT_TRUE(veth.up);
  EXPECT_EQ(veth.speedMbps, 0);
  EXPECT_EQ(veth.pciPath, "");
  EXPECT_EQ(veth.numaNode, -1);
  file("class/net/veth0/speed", "-1");  // what a veth reports where the read succeeds
  EXPECT_EQ(scan().at(3).speedMbps, 0);
}

TEST_F(SysfsTree, UpMeansTheKernelsUpAndRunningWhateverTheOperstate) {
  auto nics = scan();
  EXPECT_FALSE(nics.at(1).up);  // eth1: no carrier
  EXPECT_EQ(nics.at(1).numaNode, -1);
  EXPECT_TRUE(nics.at(2).up);  // tun0, operstate "unknown"
  EXPECT_EQ(nics.at(2).state, "unknown");
  auto l = links();
  l[3].flags &= ~IFF_RUNNING;  // nobody holds the tun open
  EXPECT_FALSE(scanNetInterfaces(l, root_).at(2).up);
}

TEST_F(SysfsTree, DefaultSelectionIsEveryNicThatIsUp) {
  auto sel = selectNics(scan(), "");
  EXPECT_THAT(labels(sel.nics), ElementsAre("eth0", "tun0", "veth0"));
  EXPECT_THAT(sel.unmatched, IsEmpty());
}

TEST_F(SysfsTree, WithoutSysfsTheInterfacesStayAndTheirDetailsAreUnknown) {
  // sysfs shows the namespace it was mounted in: a process that entered another one may not
  // find its interfaces there.
  auto nics = scanNetInterfaces(links(), root_ + "/nonexistent");
  EXPECT_THAT(labels(nics), ElementsAre("eth0", "eth1", "tun0", "veth0"));
  EXPECT_EQ(nics.at(0).speedMbps, 0);
  EXPECT_EQ(nics.at(0).pciPath, "");
  EXPECT_EQ(nics.at(0).state, "up");
  EXPECT_EQ(nics.at(1).state, "down");
}

TEST_F(SysfsTree, DiscoverUsesXsiteNicsAndLogsTheIpBranch) {
  static std::vector<std::string> lines;
  lines.clear();
  log::setSink([](log::Level, uint32_t, const char* line) { lines.emplace_back(line); });
  log::configure(log::Level::kDebug, log::kNet);  // the INFO line is DEBUG after the first call

  auto d = discoverNics(paramsWith({{"XSITE_NICS", "^veth0"}}), {root_, /*useVerbs=*/false, links()});
  log::setSink(nullptr);
  log::configure(log::Level::kWarn, log::kAll);

  EXPECT_EQ(d.branch, NicInfo::Kind::kIp);
  EXPECT_EQ(d.rdmaNote, "not asked");
  EXPECT_EQ(d.all.size(), 4u);
  EXPECT_THAT(labels(d.selected.nics), ElementsAre("eth0", "tun0"));
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("no RDMA devices (libibverbs: not asked): using IP interfaces "
                                  "eth0 (25000 Mbps), tun0 (speed unknown)"));
}

// ---- XSITE_NICS ----

std::vector<NicInfo> rdmaHost() {
  auto a = ibHdr();
  auto b = ibHdr();
  b.name = "mlx5_1";
  b.netdev = "ib1";
  auto c = ibHdr();
  c.name = "mlx5_2";
  c.netdev = "ib2";
  c.state = 1;  // down
  return nicsFromRecords({a, b, c});
}

TEST(NicSelection, IncludeListByNameLabelOrNetdev) {
  auto all = rdmaHost();
  EXPECT_THAT(labels(selectNics(all, "mlx5_1").nics), ElementsAre("mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "mlx5_0:1").nics), ElementsAre("mlx5_0:1"));
  EXPECT_THAT(labels(selectNics(all, "ib1, mlx5_0").nics), ElementsAre("mlx5_0:1", "mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "mlx5_0:2").nics), IsEmpty());  // no such port
}

TEST(NicSelection, ExcludeList) {
  auto all = rdmaHost();
  EXPECT_THAT(labels(selectNics(all, "^mlx5_0").nics), ElementsAre("mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "^ib1,mlx5_0").nics), IsEmpty());
  EXPECT_THAT(labels(selectNics(all, "^").nics), ElementsAre("mlx5_0:1", "mlx5_1:1"));
}

TEST(NicSelection, DownNicsNeverSelectedAndUnknownNamesReported) {
  auto all = rdmaHost();
  auto sel = selectNics(all, "mlx5_2,mlx5_9,mlx5_1");
  EXPECT_THAT(labels(sel.nics), ElementsAre("mlx5_1:1"));
  EXPECT_THAT(sel.unmatched, ElementsAre("mlx5_2", "mlx5_9"));
  EXPECT_THAT(selectNics(all, "^mlx5_7").unmatched, ElementsAre("mlx5_7"));
}

TEST(NicSelection, NamesArePrefixesUnlessExactAsInNcclSocketIfname) {
  auto all = rdmaHost();
  EXPECT_THAT(labels(selectNics(all, "mlx5").nics), ElementsAre("mlx5_0:1", "mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "ib").nics), ElementsAre("mlx5_0:1", "mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "=mlx5").nics), IsEmpty());
  EXPECT_THAT(labels(selectNics(all, "=mlx5_1").nics), ElementsAre("mlx5_1:1"));
  EXPECT_THAT(labels(selectNics(all, "^=mlx5_1").nics), ElementsAre("mlx5_0:1"));
  EXPECT_THAT(labels(selectNics(all, "^mlx").nics), IsEmpty());
}

TEST_F(SysfsTree, NcclSocketIfnameChoosesInterfacesWhenXsiteNicsIsUnset) {
  DiscoverOptions o{root_, /*useVerbs=*/false, links()};
  EXPECT_THAT(labels(discoverNics(paramsWith({{"NCCL_SOCKET_IFNAME", "tun"}}), o).selected.nics),
              ElementsAre("tun0"));
  EXPECT_THAT(labels(discoverNics(paramsWith({{"NCCL_SOCKET_IFNAME", "^=tun0,veth0"}}), o).selected.nics),
              ElementsAre("eth0"));
  EXPECT_THAT(labels(discoverNics(paramsWith({{"NCCL_SOCKET_IFNAME", "tun"}, {"XSITE_NICS", "veth"}}), o)
                         .selected.nics),
              ElementsAre("veth0"));  // XSITE_NICS wins
}

// ---- real interfaces, in a network namespace of their own (needs root) ----

// Runs `body` in a child process in a new network namespace; its exit status (0: passed).
int inNewNetns(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNET) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

bool canMakeNamespaces() {
  return geteuid() == 0 && inNewNetns([] { return 0; }) == 0 &&
         std::system("ip -V >/dev/null 2>&1") == 0;
}

int openTun(const char* name) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq req{};
  req.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(req.ifr_name, name, IFNAMSIZ - 1);
  if (::ioctl(fd, TUNSETIFF, &req) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

const NicInfo* find(const std::vector<NicInfo>& nics, const std::string& name) {
  for (const auto& n : nics)
    if (n.name == name) return &n;
  return nullptr;
}

// A TUN device with an address, held open (what WireGuard, GRE or a tunnel daemon give a host):
// up, though its operstate stays "unknown" and sysfs's flags never say RUNNING; a veth whose peer
// is down and a TUN nobody holds open are not; loopback is never listed.
TEST(NicInterfacesHere, TunnelsAndVethsInANamespaceAreSeenAsTheKernelSeesThem) {
  if (!canMakeNamespaces()) GTEST_SKIP() << "needs root, network namespaces and iproute2";
  const int rc = inNewNetns([] {
    const int tun = openTun("xt0");
    if (tun < 0) return 1;
    if (std::system("ip link set lo up && ip link set xt0 up && ip addr add 10.77.0.1/24 dev xt0 &&"
                    " ip tuntap add xt1 mode tun && ip link set xt1 up &&"
                    " ip link add xv0 type veth peer name xv1 && ip link set xv0 up") != 0)
      return 2;
    const auto nics = scanNetInterfaces(liveLinks());
    const NicInfo* t0 = find(nics, "xt0");
    const NicInfo* t1 = find(nics, "xt1");
    const NicInfo* v0 = find(nics, "xv0");
    if (!t0 || !t0->up) return 3;           // held open: running
    if (!t1 || t1->up) return 4;            // nobody holds it: no carrier
    if (!v0 || v0->up) return 5;            // its peer is down
    if (find(nics, "lo")) return 6;
    if (std::system("ip link set xv1 up") != 0) return 7;
    const auto after = scanNetInterfaces(liveLinks());
    if (!find(after, "xv0") || !find(after, "xv0")->up) return 8;
    if (selectNics(after, "xt").nics.size() != 1) return 9;  // NCCL_SOCKET_IFNAME-style prefix
    ::close(tun);
    return 0;
  });
  EXPECT_EQ(rc, 0) << "the child's step that failed (see the test)";
}

// ---- this machine ----

TEST(NicDiscoveryHere, ReportsOneBranchConsistently) {
  const auto scan = scanVerbs();
  const auto d = discoverNics(paramsWith({}));
  for (const auto& n : d.all) {
    EXPECT_NE(n.name, "lo");
    EXPECT_EQ(n.kind, d.branch);
  }
  for (const auto& n : d.selected.nics) EXPECT_TRUE(n.up) << n.label();
  if (scan.records.empty()) {
    // No RDMA device (as on the CI machine): the IP branch, with the reason.
    EXPECT_EQ(d.branch, NicInfo::Kind::kIp);
    EXPECT_FALSE(d.rdmaNote.empty());
    EXPECT_EQ(labels(d.all), labels(scanNetInterfaces(liveLinks())));
  } else {
    EXPECT_EQ(d.branch, NicInfo::Kind::kRdma);
    EXPECT_EQ(d.rdmaNote, "");
    EXPECT_EQ(d.all.size(), scan.records.size());
  }
}

}  // namespace
}  // namespace xsite::transport::nic

namespace xsite::transport::nic {
namespace {

TEST(UcxNetDevice, PinsRdmaPortsAndLeavesIpInterfacesToUcx) {
  NicInfo ib;
  ib.kind = NicInfo::Kind::kRdma;
  ib.name = "mlx5_3";
  ib.port = 1;
  EXPECT_EQ(ucxNetDevice(ib), "mlx5_3:1");
  NicInfo eth;
  eth.name = "eth0";
  EXPECT_EQ(ucxNetDevice(eth), "");
}

}  // namespace
}  // namespace xsite::transport::nic
