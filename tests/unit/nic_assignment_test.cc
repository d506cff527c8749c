// Which NIC serves which rank and rail: round robin by rail without locality, the nearest NIC
// (PCI path, then NUMA node) with it, spread over equally near NICs.
#include "topo/nic_assignment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace xsite::topo {
namespace {

using ::testing::ElementsAre;

std::vector<int> nicOf(const std::vector<NicChoice>& choices) {
  std::vector<int> out;
  for (size_t r = 0; r < choices.size(); ++r) {
    EXPECT_EQ(choices[r].rail, static_cast<int>(r));
    out.push_back(choices[r].nic);
  }
  return out;
}

TEST(NicAssignment, RailRModCountWithoutLocality) {
  std::vector<NicLocality> nics{{"a", "", -1}, {"b", "", -1}, {"c", "", -1}};
  EXPECT_THAT(nicOf(assignNics(nics, std::vector<RankLocality>(8))),
              ElementsAre(0, 1, 2, 0, 1, 2, 0, 1));
  EXPECT_THAT(nicOf(assignNics({nics[0]}, std::vector<RankLocality>(3))), ElementsAre(0, 0, 0));
  EXPECT_THAT(nicOf(assignNics(nics, std::vector<RankLocality>(2))), ElementsAre(0, 1));
}

TEST(NicAssignment, NoNicsLeavesRanksUnserved) {
  EXPECT_THAT(nicOf(assignNics({}, std::vector<RankLocality>(2))), ElementsAre(-1, -1));
  EXPECT_TRUE(assignNics({{"a", "", -1}}, {}).empty());
}

// A two-socket host: NICs 0,1 on socket 0's root complex, behind two PCIe switches; NICs 2,3 on
// socket 1. Each GPU sits behind the switch of one NIC, listed in an order unlike the NICs'.
const std::vector<NicLocality> kNics{
    {"mlx5_0", "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0", 0},
    {"mlx5_1", "/sys/devices/pci0000:00/0000:00:02.0/0000:11:00.0/0000:12:00.0", 0},
    {"mlx5_2", "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0", 1},
    {"mlx5_3", "/sys/devices/pci0000:80/0000:80:02.0/0000:91:00.0/0000:92:00.0", 1},
};

TEST(NicAssignment, NearestNicByPciPath) {
  std::vector<RankLocality> gpus{
      {"/sys/devices/pci0000:80/0000:80:02.0/0000:91:00.0/0000:93:00.0", 1},  // beside mlx5_3
      {"/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:03:00.0", 0},  // beside mlx5_0
      {"/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:83:00.0", 1},  // beside mlx5_2
      {"/sys/devices/pci0000:00/0000:00:02.0/0000:11:00.0/0000:13:00.0", 0},  // beside mlx5_1
  };
  EXPECT_THAT(nicOf(assignNics(kNics, gpus)), ElementsAre(3, 0, 2, 1));
}

TEST(NicAssignment, SameNumaNodeSpreadsOverItsNics) {
  // Only NUMA nodes known: ranks on node 1 share mlx5_2 and mlx5_3 in turn; rank 3 on node 0
  // finds mlx5_0 and mlx5_1 equally near and unloaded and takes the first after its rail (3).
  std::vector<NicLocality> nics = kNics;
  for (auto& n : nics) n.pciPath = "";
  std::vector<RankLocality> ranks{{"", 1}, {"", 1}, {"", 1}, {"", 0}, {"", 0}};
  EXPECT_THAT(nicOf(assignNics(nics, ranks)), ElementsAre(2, 3, 2, 0, 1));
}

TEST(NicAssignment, PciAffinityCountsSharedComponentsFromTheRootComplex) {
  EXPECT_EQ(pciAffinity(kNics[0].pciPath, kNics[0].pciPath), 4);
  EXPECT_EQ(pciAffinity(kNics[0].pciPath, kNics[1].pciPath), 1);  // same root complex
  EXPECT_EQ(pciAffinity(kNics[0].pciPath, kNics[2].pciPath), 0);  // other socket
  EXPECT_EQ(pciAffinity("", kNics[0].pciPath), 0);
  EXPECT_EQ(pciAffinity("/sys/devices/virtual/net/veth0", "/sys/devices/virtual/net/veth1"), 0);
}

}  // namespace
}  // namespace xsite::topo
