// The topology file (XSITE_TOPO_FILE): the fuzzer's bytes are the file's text. The parser and
// the topology built from its records may only accept or throw xsite::Error; any other exception
// escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "topo/topology.h"
#include "xsite/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xsite::topo;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<RankRecord> records;
  try {
    records = parseTopologyFile(text, "fuzz.topo");
  } catch (const xsite::Error&) {
    return 0;
  }
  if (records.empty()) __builtin_trap();  // documented: "no ranks listed" is an error
  try {
    const Topology t = Topology::fromRecords(records);
    (void)t.describe();
    for (int r = 0; r < t.size(); ++r) {
      const Place& p = t.place(r);
      (void)t.domainRanks(p.domain);
      (void)t.siteRanks(p.site);
      (void)t.sitePosition(r);
    }
  } catch (const xsite::Error&) {
  }
  return 0;
}
