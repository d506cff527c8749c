// xsite::Communicator: the collectives of one rank of a multi-site job, on host buffers.
//
//   auto comm = xsite::Communicator::fromEnvironment();   // under xsite-run, torchrun, mpirun...
//   comm.allReduce(in, out, n, xsite::DataType::kFloat32, xsite::ReduceOp::kSum);
//
// Every rank must call each collective in the same order with the same count, type, op, root
// and algorithm. Errors throw xsite::Error (xsite/error.h). A Communicator is used by one thread
// at a time; it is a movable value (pimpl).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "xsite/error.h"
#include "xsite/store.h"
#include "xsite/types.h"

namespace xsite {

// Settings of one communicator. Each unset field takes its XSITE_* variable (docs/configuration.md).
struct Config {
  std::optional<Algorithm> algorithm;       // XSITE_ALGO
  std::optional<size_t> chunkBytes;         // XSITE_CHUNK_SIZE
  std::optional<size_t> sliceBytes;         // XSITE_SLICE_SIZE
  std::optional<double> timeoutSeconds;     // XSITE_TIMEOUT
  std::optional<double> heartbeatSeconds;   // XSITE_HEARTBEAT (0: none)
  std::optional<double> bootstrapTimeoutSeconds;  // XSITE_BOOTSTRAP_TIMEOUT
  std::optional<Codec> codec;               // XSITE_CODEC: all-reduce's cross-site codec
  std::optional<uint32_t> codecBlockSize;   // XSITE_CODEC_BLOCK
  std::optional<bool> errorFeedback;        // XSITE_ERROR_FEEDBACK
};

struct AllReduceOptions {
  AllReduceOptions() = default;
  AllReduceOptions(Algorithm a) : algorithm(a) {}  // NOLINT: allReduce(..., Algorithm::kRing)

  Algorithm algorithm = Algorithm::kAuto;  // kAuto: the communicator's default (XSITE_ALGO)
  // The codec of the cross-site stage of the hierarchical schedule (unset: the communicator's).
  // Lossy codecs apply to sum and average of float32, bfloat16 and float16; other calls cross
  // exactly. The domain and site stages are always exact, and every rank gets the same bytes.
  std::optional<Codec> codec;
  std::optional<bool> errorFeedback;  // lossy codecs: carry the residual over (unset: config's)
  // Which residual this call reads and updates (one per gradient bucket, say). Empty: one per
  // (count, type), spelled "count:<n>:<type>".
  std::string errorFeedbackKey;
};

// Bytes this rank's cross-site stages sent since the communicator was created: as elements
// (rawBytes) and on the wire after the codec (wireBytes, headers included).
struct WanStats {
  uint64_t rawBytes = 0;
  uint64_t wireBytes = 0;
};

struct Placement {
  int site;
  int domain;     // global domain index
  int localRank;  // index inside the domain
};

class LocalGroup;

class Communicator {
 public:
  // Rank of a multi-process job. Reads the topology (XSITE_TOPO_FILE, XSITE_* variables, or
  // torchrun / Open MPI / Slurm variables) and meets the other ranks at the rendezvous store
  // (XSITE_STORE_ADDR, else MASTER_ADDR:MASTER_PORT+1; rank 0 serves it). Collective.
  static Communicator fromEnvironment(const Config& config = {});
  // Rank `rank` of `size`, meeting the others at `store`, which the caller owns (a framework's
  // own, such as torch.distributed's, so that the job binds no second port; it must outlive the
  // communicator). The placement and settings come from the environment as for
  // fromEnvironment. No heartbeats: a rank that dies is still named, one that stops is noticed
  // after XSITE_TIMEOUT. Collective.
  static Communicator fromStore(Store& store, int rank, int size, const Config& config = {});
  // Rank `rank` of a group of threads in this process. Collective over the group's threads.
  static Communicator fromLocalGroup(LocalGroup& group, int rank);

  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();

  int rank() const;
  int size() const;
  int numSites() const;
  Placement placement(int rank) const;
  std::string describeTopology() const;
  // Which transport carries each kind of link, e.g. "domain shm, site ucx, between sites wan".
  std::string describeTransports() const;
  // The algorithm allReduce(..., count, type, op, options) runs (the cost model's choice when
  // it is kAuto, counting the codec's compression of the hierarchical path).
  Algorithm chooseAlgorithm(size_t count, DataType type, ReduceOp op,
                            const AllReduceOptions& options = {}) const;

  void allReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                 const AllReduceOptions& options = {});
  // send holds size()*recvCount elements; recv gets this rank's reduced block.
  void reduceScatter(const void* send, void* recv, size_t recvCount, DataType type, ReduceOp op);
  // recv gets size()*sendCount elements, rank r's contribution at r*sendCount.
  void allGather(const void* send, void* recv, size_t sendCount, DataType type);
  // send is read on the root only; every rank's recv gets the root's data.
  void broadcast(const void* send, void* recv, size_t count, DataType type, int root);
  void barrier();

  // Error feedback (lossy codecs): forget a key's residual (reset keeps its memory, drop frees
  // it), or every key's. Local to this rank; call it on every rank to keep them in step.
  void resetErrorFeedback();
  void resetErrorFeedback(const std::string& key);
  void dropErrorFeedback();
  void dropErrorFeedback(const std::string& key);
  // Memory the residuals hold (bounded by XSITE_ERROR_FEEDBACK_MAX_BYTES).
  size_t errorFeedbackBytes() const;
  WanStats wanStats() const;

  // Like ncclCommAbort: callable from any thread, at any time. Every call of this communicator
  // that is running fails within a few milliseconds, and every later one at once, with an Error
  // of category kAborted; the destructor then closes without waiting for peers. The other ranks
  // see this rank's connections close. Use it to get out of a collective that a failed or
  // stuck peer will never finish, e.g. from a watchdog thread.
  void abort() noexcept;

 private:
  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);
  static Communicator fromRendezvous(Store* external, int rank, int size, const Config& config);
  std::unique_ptr<Impl> impl_;
};

// Ranks as threads of one process (tests, single-host use): in-process rendezvous, and in-process
// rings for every link, unless XSITE_DOMAIN_TRANSPORT, XSITE_SITE_TRANSPORT or XSITE_WAN_TRANSPORT
// names a transport: that kind of link then runs over it (shm, tcp, ucx, WAN streams) as between
// processes, on 127.0.0.1. Shape: per site, the number of ranks of each of its domains, e.g.
// {{2, 2}, {2}}.
class LocalGroup {
 public:
  explicit LocalGroup(const std::vector<std::vector<int>>& domainSizesPerSite, Config config = {});
  LocalGroup(int sites, int domainsPerSite, int ranksPerDomain, Config config = {});
  ~LocalGroup();
  LocalGroup(const LocalGroup&) = delete;
  LocalGroup& operator=(const LocalGroup&) = delete;
  int size() const;

 private:
  friend class Communicator;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xsite
