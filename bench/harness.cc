#include "harness.h"

#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace xsite::bench {
namespace {

struct Options {
  size_t minBytes = 32u << 20, maxBytes = 32u << 20, stepBytes = 1u << 20;
  double stepFactor = 1;
  int iters = 20, warmup = 1, check = 1, average = 1, root = 0;
  std::vector<DataType> types{DataType::kFloat32};
  std::vector<ReduceOp> ops{ReduceOp::kSum};
  Algorithm algo = Algorithm::kAuto;
  std::optional<Codec> codec;  // unset: XSITE_CODEC
  std::string json;
};

[[noreturn]] void usage(const Collective& c, const char* error) {
  if (error) fprintf(stderr, "%s: %s\n", c.program, error);
  fprintf(stderr,
          "usage: %s [flags]   (nccl-tests flags)\n"
          "  -b, --minbytes N     smallest size (K/M/G suffixes), default 32M\n"
          "  -e, --maxbytes N     largest size, default 32M\n"
          "  -i, --stepbytes N    fixed increment, default 1M\n"
          "  -f, --stepfactor F   multiplicative step (overrides -i)\n"
          "  -n, --iters N        timed iterations, default 20\n"
          "  -w, --warmup_iters N warm-up iterations, default 1\n"
          "  -c, --check N        iterations that verify every element of every rank (0: off), default 1\n"
          "  -o, --op OP          sum|prod|max|min|avg|all, default sum\n"
          "  -d, --datatype T     int8|uint8|int32|uint32|int64|uint64|half|float|double|bfloat16|"
          "f8e4m3|f8e5m2|all\n"
          "  -r, --root R         root of rooted collectives, default 0\n"
          "  -a, --average N      combine times over ranks: 0 rank 0, 1 average, 2 min, 3 max\n"
          "  -A, --algo A         ring|hier|latency|auto (all-reduce), default auto\n"
          "      --codec C        none|lz4|zstd|bf16|fp16|int8|fp8|int4: the cross-site codec of\n"
          "                       the hierarchical all-reduce, default XSITE_CODEC\n"
          "  -J, --output_file F  also write the results as JSON\n"
          "  -t, -g               threads and GPUs per process: only 1 is supported\n"
          "Run one process per rank, e.g. under xsite-run, torchrun or mpirun.\n",
          c.program);
  exit(error ? 2 : 0);
}

size_t parseBytes(const Collective& c, const char* s) {
  char* end = nullptr;
  double v = strtod(s, &end);
  size_t mult = 1;
  if (*end == 'K' || *end == 'k') mult = 1u << 10, ++end;
  else if (*end == 'M' || *end == 'm') mult = 1u << 20, ++end;
  else if (*end == 'G' || *end == 'g') mult = 1u << 30, ++end;
  if (end == s || *end != '\0' || v < 0) usage(c, (std::string("bad size '") + s + "'").c_str());
  return static_cast<size_t>(v * static_cast<double>(mult));
}

int parseInt(const Collective& c, const char* flag, const char* s) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0)
    usage(c, (std::string("bad value '") + s + "' for " + flag).c_str());
  return static_cast<int>(v);
}

Options parse(int argc, char** argv, const Collective& c) {
  Options o;
  static const option longOpts[] = {
      {"nthreads", required_argument, nullptr, 't'},  {"ngpus", required_argument, nullptr, 'g'},
      {"minbytes", required_argument, nullptr, 'b'},  {"maxbytes", required_argument, nullptr, 'e'},
      {"stepbytes", required_argument, nullptr, 'i'}, {"stepfactor", required_argument, nullptr, 'f'},
      {"iters", required_argument, nullptr, 'n'},     {"warmup_iters", required_argument, nullptr, 'w'},
      {"check", required_argument, nullptr, 'c'},     {"op", required_argument, nullptr, 'o'},
      {"datatype", required_argument, nullptr, 'd'},  {"root", required_argument, nullptr, 'r'},
      {"average", required_argument, nullptr, 'a'},   {"algo", required_argument, nullptr, 'A'},
      {"codec", required_argument, nullptr, 'C'},
      {"output_file", required_argument, nullptr, 'J'}, {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "t:g:b:e:i:f:n:w:c:o:d:r:a:A:J:h", longOpts, nullptr)) != -1) {
    switch (ch) {
      case 't':
      case 'g':
        if (parseInt(c, "-t/-g", optarg) != 1)
          usage(c, "one thread and one device per process: start more processes instead");
        break;
      case 'b': o.minBytes = parseBytes(c, optarg); break;
      case 'e': o.maxBytes = parseBytes(c, optarg); break;
      case 'i': o.stepBytes = parseBytes(c, optarg); break;
      case 'f': o.stepFactor = atof(optarg); if (o.stepFactor < 1) usage(c, "-f must be >= 1"); break;
      case 'n': o.iters = std::max(1, parseInt(c, "-n", optarg)); break;
      case 'w': o.warmup = parseInt(c, "-w", optarg); break;
      case 'c': o.check = parseInt(c, "-c", optarg); break;
      case 'r': o.root = parseInt(c, "-r", optarg); break;
      case 'a': o.average = parseInt(c, "-a", optarg); if (o.average > 3) usage(c, "-a takes 0..3"); break;
      case 'J': o.json = optarg; break;
      case 'o':
        o.ops.clear();
        if (!strcmp(optarg, "all")) {
          for (int i = 0; i < kNumReduceOps; ++i) o.ops.push_back(static_cast<ReduceOp>(i));
        } else if (auto op = parseReduceOp(optarg)) {
          o.ops.push_back(*op);
        } else {
          usage(c, (std::string("unknown op '") + optarg + "'").c_str());
        }
        break;
      case 'd':
        o.types.clear();
        if (!strcmp(optarg, "all")) {
          for (int i = 0; i < kNumDataTypes; ++i)
            if (!c.reduces || isReducible(static_cast<DataType>(i))) o.types.push_back(static_cast<DataType>(i));
        } else if (auto t = parseDataType(optarg)) {
          o.types.push_back(*t);
        } else {
          usage(c, (std::string("unknown datatype '") + optarg + "'").c_str());
        }
        break;
      case 'A':
        if (auto a = parseAlgorithm(optarg)) o.algo = *a;
        else usage(c, (std::string("unknown algorithm '") + optarg + "' (ring|hier|latency|auto)").c_str());
        break;
      case 'C':
        if (auto k = parseCodec(optarg)) o.codec = *k;
        else usage(c, (std::string("unknown codec '") + optarg + "' (none|lz4|zstd|bf16|fp16|int8|fp8|int4)").c_str());
        break;
      case 'h': usage(c, nullptr);
      default: usage(c, "unknown flag");
    }
  }
  if (optind < argc) usage(c, (std::string("unexpected argument '") + argv[optind] + "'").c_str());
  if (o.maxBytes < o.minBytes) usage(c, "-e must be >= -b");
  return o;
}

// nccl-tests prints numbers in fixed widths with 2 decimals, falling back to fewer.
std::string num(double v, int width) {
  char buf[32];
  for (int prec = 2; prec >= 0; --prec) {
    snprintf(buf, sizeof(buf), "%*.*f", width, prec, v);
    if (static_cast<int>(strlen(buf)) <= width) return buf;
  }
  snprintf(buf, sizeof(buf), "%*.0e", width, v);
  return buf;
}

std::string wrongCol(long wrong) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%6ld", wrong);
  return buf;
}

struct Result {
  double us;
  double algbw, busbw;
  long wrong;  // -1: not checked
  double wireBytes;  // per call, this rank's cross-site bytes after the codec
  double ratio;      // cross-site bytes as elements / on the wire (1 uncompressed, 0 none sent)
};

// The error a lossy codec may add to an element of a sum of the harness's inputs (|x| <= 4
// per rank): two roundings (contribution and result) plus a carried residual, each at most half
// a step of the block's largest value (at most 4n).
double codecTolerance(std::optional<Codec> codec, int nranks) {
  double halfStep = 0;
  switch (codec.value_or(Codec::kNone)) {
    case Codec::kBf16: halfStep = 1.0 / 256; break;
    case Codec::kFp16: halfStep = 1.0 / 2048; break;
    case Codec::kInt8: halfStep = 1.0 / 254; break;
    case Codec::kFp8: halfStep = 1.0 / 16; break;
    case Codec::kInt4: halfStep = 1.0 / 14; break;
    default: return 0;
  }
  return 4 * halfStep * testing::kMaxAbsInput * nranks;
}

}  // namespace

int benchMain(int argc, char** argv, const Collective& c) {
  Options o = parse(argc, argv, c);
  try {
    Communicator comm = Communicator::fromEnvironment();
    const int n = comm.size(), me = comm.rank();
    if (c.rooted && o.root >= n) usage(c, "-r is not a rank of this job");

    // Preamble.
    struct RankLine {
      int pid, site, domain, local;
      char host[64];
    } mine{getpid(), comm.placement(me).site, comm.placement(me).domain, comm.placement(me).localRank, {}};
    gethostname(mine.host, sizeof(mine.host) - 1);
    std::vector<RankLine> lines(n);
    comm.allGather(&mine, lines.data(), sizeof(RankLine), DataType::kUint8);
    if (me == 0) {
      printf("# nThread 1 nGpus 1 minBytes %zu maxBytes %zu step: %s warmup iters: %d iters: %d "
             "agg iters: 1 validation: %d graph: 0\n",
             o.minBytes, o.maxBytes,
             o.stepFactor > 1 ? (std::to_string(static_cast<int>(o.stepFactor)) + "(factor)").c_str()
                              : (std::to_string(o.stepBytes) + "(bytes)").c_str(),
             o.warmup, o.iters, o.check);
      printf("#\n# xsite %s: %s; transports: %s; algorithm %s; cross-site codec %s; host buffers\n",
             XSITE_VERSION_STRING, comm.describeTopology().c_str(), comm.describeTransports().c_str(),
             std::string(algorithmName(o.algo)).c_str(),
             o.codec ? std::string(codecName(*o.codec)).c_str() : "from XSITE_CODEC");
      printf("# Using devices\n");
      for (int r = 0; r < n; ++r)
        printf("#  Rank %2d Group  0 Pid %6d on %10s device  0 [site %d domain %d local %d] host\n",
               r, lines[r].pid, lines[r].host, lines[r].site, lines[r].domain, lines[r].local);
      printf("#\n");
      printf("#%87s%32s\n", "out-of-place", "in-place");
      printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s%s\n", "size",
             "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw",
             "busbw", "#wrong", c.hasAlgorithm ? "    algo      wire   ratio" : "");
      printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s%s\n", "(B)",
             "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "",
             c.hasAlgorithm ? "               (B)        " : "");
      fflush(stdout);
    }

    // Buffers for the largest size (any type: sized in bytes).
    size_t maxSend = 0, maxRecv = 0;
    for (DataType t : o.types) {
      size_t s, r;
      c.counts(o.maxBytes, dataTypeSize(t), n, &s, &r);
      maxSend = std::max(maxSend, s * dataTypeSize(t));
      maxRecv = std::max(maxRecv, r * dataTypeSize(t));
    }
    std::vector<char> sendBuf(maxSend + 64), recvBuf(std::max(maxRecv, maxSend) + 64);

    double busSum = 0;
    int rows = 0;
    long wrongTotal = 0;
    FILE* json = nullptr;
    if (me == 0 && !o.json.empty()) {
      json = fopen(o.json.c_str(), "w");
      if (!json) throw Error(ErrorCategory::kInvalidUsage, "cannot write -J file " + o.json);
      fprintf(json, "{\n  \"program\": \"%s\",\n  \"nranks\": %d,\n  \"topology\": \"%s\",\n  \"results\": [", c.program, n,
              comm.describeTopology().c_str());
    }
    bool firstJson = true;

    for (DataType t : o.types)
      for (ReduceOp op : c.reduces ? o.ops : std::vector<ReduceOp>{ReduceOp::kSum}) {
        const size_t es = dataTypeSize(t);
        for (size_t bytes = o.minBytes; bytes <= o.maxBytes;
             bytes = o.stepFactor > 1 ? std::max(bytes + 1, static_cast<size_t>(bytes * o.stepFactor))
                                      : bytes + std::max<size_t>(o.stepBytes, 1)) {
          size_t sendCount, recvCount;
          c.counts(bytes, es, n, &sendCount, &recvCount);
          const size_t sizeCol = std::max(sendCount, recvCount) * es;
          const int root = c.rooted ? o.root : -1;
          AllReduceOptions runOptions;
          runOptions.algorithm = o.algo;
          runOptions.codec = o.codec;
          Algorithm ran = c.hasAlgorithm ? comm.chooseAlgorithm(sendCount, t, op, runOptions)
                                         : Algorithm::kAuto;
          Result res[2];
          for (int inPlace = 0; inPlace < 2; ++inPlace) {
            Buffers b = inPlace ? c.inPlace(comm, recvBuf.data(), es, sendCount, recvCount)
                                : Buffers{sendBuf.data(), recvBuf.data()};
            auto fill = [&] {
              void* dst = const_cast<void*>(b.send);
              for (size_t i = 0; i < sendCount; ++i) elementFromDouble(dst, t, i, testing::inputValue(t, op, me, i));
            };
            // Correctness: every element of every rank, summed over ranks.
            long wrong = -1;
            if (o.check > 0) {
              int64_t local = 0;
              for (int k = 0; k < o.check; ++k) {
                fill();
                c.run(comm, b, sendCount, recvCount, t, op, c.rooted ? o.root : 0, runOptions);
                const double lossy = c.hasAlgorithm && isFloatingPoint(t) ? codecTolerance(o.codec, n) : 0;
                for (size_t i = 0; i < recvCount; ++i) {
                  double got = elementToDouble(b.recv, t, i);
                  double want = c.expected(comm, t, op, c.rooted ? o.root : 0, sendCount, i);
                  bool ok = got == want ||
                            (isFloatingPoint(t) && std::fabs(got - want) <= 1e-2 * std::max(1.0, std::fabs(want))) ||
                            std::fabs(got - want) <= lossy;
                  local += !ok;
                }
              }
              int64_t total = 0;
              comm.allReduce(&local, &total, 1, DataType::kInt64, ReduceOp::kSum);
              wrong = static_cast<long>(total);
            }
            fill();
            for (int k = 0; k < o.warmup; ++k)
              c.run(comm, b, sendCount, recvCount, t, op, c.rooted ? o.root : 0, runOptions);
            comm.barrier();
            const WanStats wan0 = comm.wanStats();
            auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; k < o.iters; ++k)
              c.run(comm, b, sendCount, recvCount, t, op, c.rooted ? o.root : 0, runOptions);
            double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / o.iters;
            // Combine across ranks as nccl-tests -a does.
            double combined = us;
            if (o.average == 1) {
              comm.allReduce(&us, &combined, 1, DataType::kFloat64, ReduceOp::kAvg);
            } else if (o.average == 2) {
              comm.allReduce(&us, &combined, 1, DataType::kFloat64, ReduceOp::kMin);
            } else if (o.average == 3) {
              comm.allReduce(&us, &combined, 1, DataType::kFloat64, ReduceOp::kMax);
            } else {
              comm.broadcast(&us, &combined, 1, DataType::kFloat64, 0);
            }
            double algbw = static_cast<double>(sizeCol) / 1e3 / combined;  // GB/s
            const WanStats wan1 = comm.wanStats();
            const double raw = static_cast<double>(wan1.rawBytes - wan0.rawBytes) / o.iters;
            const double wire = static_cast<double>(wan1.wireBytes - wan0.wireBytes) / o.iters;
            res[inPlace] = Result{combined, algbw, algbw * c.busFactor(n), wrong, wire,
                                  wire > 0 ? raw / wire : 0};
            busSum += res[inPlace].busbw;
            ++rows;
            if (wrong > 0) wrongTotal += wrong;
          }
          if (me == 0) {
            auto cols = [](const Result& r) {
              return num(r.us, 7) + "  " + num(r.algbw, 6) + "  " + num(r.busbw, 6) + "  " +
                     (r.wrong < 0 ? std::string("   N/A") : wrongCol(r.wrong));
            };
            printf("  %10zu  %12zu  %8s  %6s  %6d  %s  %s%s\n", sizeCol, sizeCol / es,
                   std::string(dataTypeName(t)).c_str(),
                   c.reduces ? std::string(reduceOpName(op)).c_str() : "none", root,
                   cols(res[0]).c_str(), cols(res[1]).c_str(),
                   c.hasAlgorithm ? ("  " + std::string(6 - std::min<size_t>(6, algorithmName(ran).size()), ' ') +
                                     std::string(algorithmName(ran)) + "  " + num(res[0].wireBytes, 8) +
                                     "  " + num(res[0].ratio, 6)).c_str()
                                  : "");
            fflush(stdout);
            if (json) {
              fprintf(json,
                      "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"redop\": \"%s\", "
                      "\"root\": %d, \"algo\": \"%s\", \"codec\": \"%s\", \"wire_bytes\": %.0f, "
                      "\"ratio\": %.4f, \"out_of_place\": {\"time_us\": %.3f, "
                      "\"algbw\": %.4f, \"busbw\": %.4f, \"wrong\": %ld}, \"in_place\": {\"time_us\": "
                      "%.3f, \"algbw\": %.4f, \"busbw\": %.4f, \"wrong\": %ld}}",
                      firstJson ? "" : ",", sizeCol, sizeCol / es, std::string(dataTypeName(t)).c_str(),
                      c.reduces ? std::string(reduceOpName(op)).c_str() : "none", root,
                      std::string(algorithmName(ran)).c_str(),
                      o.codec ? std::string(codecName(*o.codec)).c_str() : "env", res[0].wireBytes,
                      res[0].ratio, res[0].us, res[0].algbw, res[0].busbw,
                      res[0].wrong, res[1].us, res[1].algbw, res[1].busbw, res[1].wrong);
              firstJson = false;
            }
          }
          if (bytes == o.maxBytes) break;
        }
      }
    double avgBus = rows ? busSum / rows : 0;
    if (me == 0) {
      printf("# Out of bounds values : %ld %s\n", wrongTotal, wrongTotal ? "FAILED" : "OK");
      printf("# Avg bus bandwidth    : %g \n#\n", avgBus);
      printf("# Collective test concluded: %s\n", c.program);
      if (json) {
        fprintf(json, "\n  ],\n  \"wrong\": %ld,\n  \"avg_busbw\": %.6f\n}\n", wrongTotal, avgBus);
        fclose(json);
      }
    }
    return wrongTotal ? 1 : 0;
  } catch (const Error& e) {
    fprintf(stderr, "%s: %s\n", c.program, e.what());
    return 1;
  }
}

}  // namespace xsite::bench
