// Sums one vector over four ranks run as threads, through the installed xsite package.
#include <cstdio>
#include <thread>
#include <vector>

#include <xsite/xsite.h>

int main() {
  xsite::LocalGroup group({{2}, {2}});  // 2 sites x 1 domain x 2 ranks
  std::vector<std::thread> ranks;
  std::vector<float> result(4);
  for (int r = 0; r < group.size(); ++r)
    ranks.emplace_back([&, r] {
      auto comm = xsite::Communicator::fromLocalGroup(group, r);
      std::vector<float> x(1000, static_cast<float>(r + 1));
      comm.allReduce(x.data(), x.data(), x.size(), xsite::DataType::kFloat32, xsite::ReduceOp::kSum);
      result[r] = x[999];
    });
  for (auto& t : ranks) t.join();
  for (float v : result)
    if (v != 10.0f) {
      std::printf("consumer: wrong sum %g\n", v);
      return 1;
    }
  std::printf("consumer ok: xsite %s, sum 10 on every rank\n", XSITE_VERSION_STRING);
  return 0;
}
