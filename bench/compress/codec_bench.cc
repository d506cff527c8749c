// Codec microbenchmarks: encode and decode of 64 MiB of float32 gradient-like data per codec,
// single-threaded (figures are per core), next to a memcpy of the same 64 MiB as the reference.
// Three data sets of N(0, 0.01) floats from fixed seeds: "normal" (dense), "sparse" (75% of the
// 256-element rows zero: embedding-style row sparsity) and "relu" (50% of the elements zero at
// random positions). Bytes/s counts the uncompressed bytes; "ratio" is uncompressed /
// encoded. zeropack4/zerounpack4 time the lossless codecs' zero elision per path.
// bench/codec_bench.sh runs this and prints the table against the goals.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "compress/codec.h"
#include "compress/shuffle.h"
#include "compress/zero_map.h"

namespace xsite::compress {
namespace {

constexpr size_t kBytes = size_t{64} << 20;
constexpr size_t kCount = kBytes / sizeof(float);

enum class Data { kNormal, kSparse, kRelu };
const char* dataName(Data d) {
  return d == Data::kNormal ? "normal" : d == Data::kSparse ? "sparse" : "relu";
}

const std::vector<float>& input(Data d) {
  static std::vector<float> sets[3];
  auto& v = sets[static_cast<int>(d)];
  if (v.empty()) {
    v.resize(kCount);
    std::mt19937_64 rng(42 + static_cast<int>(d));
    std::normal_distribution<float> normal(0.0f, 0.01f);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (auto& x : v) x = normal(rng);
    constexpr size_t kRow = 256;
    if (d == Data::kSparse)
      for (size_t r = 0; r < kCount / kRow; ++r)
        if (unit(rng) < 0.75f) std::fill(v.begin() + r * kRow, v.begin() + (r + 1) * kRow, 0.0f);
    if (d == Data::kRelu)
      for (auto& x : v) x = unit(rng) < 0.5f ? 0.0f : x;
  }
  return v;
}

// A buffer whose pages are touched before timing.
std::vector<uint8_t> touched(size_t bytes) { return std::vector<uint8_t>(bytes, 1); }

void memcpyBench(benchmark::State& state, Data d) {
  const auto& in = input(d);
  auto out = touched(kBytes);
  for (auto _ : state) {
    memcpy(out.data(), in.data(), kBytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBytes);
}

void shuffleBench(benchmark::State& state, Data d, ShuffleIsa isa, bool forward) {
  if (!shuffleIsaAvailable(isa)) return state.SkipWithError("ISA not available on this CPU");
  const auto& in = input(d);
  auto out = touched(kBytes);
  for (auto _ : state) {
    if (forward) shuffleBytes(isa, in.data(), kCount, sizeof(float), out.data());
    else unshuffleBytes(isa, in.data(), kCount, sizeof(float), out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBytes);
}

// Zero elision's pack (bitmap + non-zero elements) or unpack of the 64 MiB, per path.
void zeroMapBench(benchmark::State& state, Data d, ZeroMapIsa isa, bool forward) {
  if (!zeroMapIsaAvailable(isa)) return state.SkipWithError("ISA not available on this CPU");
  const auto& in = input(d);
  auto bitmap = touched(zeroMapBitmapBytes(kCount));
  auto packed = touched(kBytes + kZeroMapSlack);
  auto out = touched(kBytes);
  const size_t n = packNonZero(isa, in.data(), kCount, sizeof(float), bitmap.data(), packed.data());
  for (auto _ : state) {
    if (forward) packNonZero(isa, in.data(), kCount, sizeof(float), bitmap.data(), packed.data());
    else unpackNonZero(isa, bitmap.data(), packed.data(), kCount, sizeof(float), out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBytes);
  state.counters["nonzero"] = static_cast<double>(n) / static_cast<double>(kCount);
}

void codecBench(benchmark::State& state, Data d, CodecId id, bool encode) {
  auto codec = makeCodec(id);
  if (!codec) return state.SkipWithError("codec not built yet (makeCodec returned nullptr)");
  const auto& in = input(d);
  auto enc = touched(codec->maxEncodedBytes(kCount, DataType::kFloat32));
  auto first = codec->encode(in.data(), kCount, DataType::kFloat32, enc.data(), enc.size());
  if (!first) return state.SkipWithError(first.status().message().c_str());
  const size_t encoded = first.value();
  auto out = touched(kBytes);
  for (auto _ : state) {
    if (encode) {
      auto r = codec->encode(in.data(), kCount, DataType::kFloat32, enc.data(), enc.size());
      benchmark::DoNotOptimize(r);
    } else {
      Status s = codec->decode(enc.data(), encoded, kCount, DataType::kFloat32, out.data());
      if (!s) return state.SkipWithError(s.message().c_str());
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBytes);
  state.counters["ratio"] = static_cast<double>(kBytes) / static_cast<double>(encoded);
}

void registerAll() {
  for (Data d : {Data::kNormal, Data::kSparse, Data::kRelu}) {
    const std::string set = dataName(d);
    benchmark::RegisterBenchmark(("memcpy/" + set).c_str(), memcpyBench, d)
        ->Unit(benchmark::kMillisecond);
    for (int c = 0; c < kNumCodecs; ++c) {
      const auto id = static_cast<CodecId>(c);
      for (bool encode : {true, false}) {
        const std::string name = std::string(encode ? "encode/" : "decode/") +
                                 std::string(codecName(id)) + "/" + set;
        benchmark::RegisterBenchmark(name.c_str(), codecBench, d, id, encode)
            ->Unit(benchmark::kMillisecond);
      }
    }
    const std::pair<ZeroMapIsa, const char*> zisas[] = {
        {ZeroMapIsa::kScalar, "scalar"}, {ZeroMapIsa::kAvx2, "avx2"}, {ZeroMapIsa::kAvx512, "avx512"}};
    for (const auto& [isa, isaName] : zisas) {
      benchmark::RegisterBenchmark(("zeropack4/" + std::string(isaName) + "/" + set).c_str(),
                                   zeroMapBench, d, isa, true)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("zerounpack4/" + std::string(isaName) + "/" + set).c_str(),
                                   zeroMapBench, d, isa, false)
          ->Unit(benchmark::kMillisecond);
    }
    for (ShuffleIsa isa : {ShuffleIsa::kScalar, ShuffleIsa::kAvx2}) {
      const std::string isaName = isa == ShuffleIsa::kAvx2 ? "avx2" : "scalar";
      benchmark::RegisterBenchmark(("shuffle4/" + isaName + "/" + set).c_str(), shuffleBench, d,
                                   isa, true)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("unshuffle4/" + isaName + "/" + set).c_str(), shuffleBench,
                                   d, isa, false)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace
}  // namespace xsite::compress

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  xsite::compress::registerAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
