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

#include <filesystem>
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

// ---- the sysfs branch: a /sys tree in a temporary directory ----

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

  std::string root_;
};

TEST_F(SysfsTree, ListsInterfacesButLoopback) {
  auto nics = scanNetInterfaces(root_);
  EXPECT_THAT(labels(nics), ElementsAre("eth0", "eth1", "tun0", "veth0"));
}

TEST_F(SysfsTree, PhysicalInterfaceHasPciPathSpeedAndNuma) {
  auto eth0 = scanNetInterfaces(root_).at(0);
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
  auto nics = scanNetInterfaces(root_);
  const auto& veth = nics.at(3);
  ASSERT_EQ(veth.name, "veth0");
  EXPECT_TRUE(veth.up);
  EXPECT_EQ(veth.speedMbps, 0);
  EXPECT_EQ(veth.pciPath, "");
  EXPECT_EQ(veth.numaNode, -1);
  file("class/net/veth0/speed", "-1");  // what a veth reports where the read succeeds
  EXPECT_EQ(scanNetInterfaces(root_).at(3).speedMbps, 0);
}

TEST_F(SysfsTree, UpMeansOperstateUpOrUnknownAndRunning) {
  auto nics = scanNetInterfaces(root_);
  EXPECT_FALSE(nics.at(1).up);  // eth1 down
  EXPECT_EQ(nics.at(1).numaNode, -1);
  EXPECT_TRUE(nics.at(2).up);              // tun0
  file("class/net/tun0/flags", "0x1091");  // UP but not RUNNING
  EXPECT_FALSE(scanNetInterfaces(root_).at(2).up);
}

TEST_F(SysfsTree, DefaultSelectionIsEveryNicThatIsUp) {
  auto sel = selectNics(scanNetInterfaces(root_), "");
  EXPECT_THAT(labels(sel.nics), ElementsAre("eth0", "tun0", "veth0"));
  EXPECT_THAT(sel.unmatched, IsEmpty());
}

TEST_F(SysfsTree, MissingRootFindsNothing) {
  EXPECT_THAT(scanNetInterfaces(root_ + "/nonexistent"), IsEmpty());
}

TEST_F(SysfsTree, DiscoverUsesXsiteNicsAndLogsTheIpBranch) {
  static std::vector<std::string> lines;
  lines.clear();
  log::setSink([](log::Level, uint32_t, const char* line) { lines.emplace_back(line); });
  log::configure(log::Level::kDebug, log::kNet);  // the INFO line is DEBUG after the first call

  auto d = discoverNics(paramsWith({{"XSITE_NICS", "^veth0"}}), {root_, /*useVerbs=*/false});
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
    EXPECT_EQ(labels(d.all), labels(scanNetInterfaces("/sys")));
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
