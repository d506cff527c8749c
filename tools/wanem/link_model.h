// The model of one direction of an emulated WAN link: pure arithmetic, no I/O.
//
// A packet that arrives at time `now` meets, in order:
//   1. a drop-tail queue holding at most `queue_bytes` bytes that wait for serialization
//      (an empty queue always takes a packet, however large);
//   2. a bottleneck of `rate_mbit`: departure = max(now, last departure) + bytes * 8 / rate;
//   3. random loss on the wire, segment by segment: each segment of a packet (a GSO super-packet
//      carries k of them) is lost with probability p on its own, as on a fiber, where the k
//      segments travel as k packets; the caller forwards the others. With `whole_packet_loss`
//      a packet any of whose segments is lost is lost whole instead, as netem drops a TSO
//      super-packet on a sending host: the same loss events, each a burst of up to k segments;
//   4. propagation: delivery = max(previous delivery, departure + delay + U(0, jitter)),
//      so jitter never reorders.
// Times are nanoseconds on any monotonic clock; a rate of 0 means no bottleneck.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace xsite::wanem {

struct LinkParams {
  double delay_ms = 0;      // one-way propagation delay
  double jitter_ms = 0;     // uniform random extra delay in [0, jitter)
  double rate_mbit = 0;     // bottleneck rate, Mbit/s; 0: unlimited
  double loss_pct = 0;      // per-segment loss probability, percent
  int64_t queue_bytes = 0;  // drop-tail limit on bytes waiting for serialization
  bool whole_packet_loss = false;  // a lost segment takes its whole GSO packet with it
};

enum class Verdict { kForward, kQueueDrop, kLossDrop };

class LinkModel {
 public:
  LinkModel(const LinkParams& p, uint64_t seed)
      : delay_ns_(p.delay_ms * 1e6),
        jitter_ns_(p.jitter_ms * 1e6),
        ns_per_byte_(p.rate_mbit > 0 ? 8e3 / p.rate_mbit : 0),
        keep_(1.0 - p.loss_pct / 100.0),
        whole_packet_loss_(p.whole_packet_loss),
        queue_bytes_(static_cast<double>(p.queue_bytes)),
        rng_(seed) {}

  // Bytes still waiting for serialization at `now`.
  double backlogBytes(int64_t now) const {
    if (ns_per_byte_ == 0 || last_departure_ <= static_cast<double>(now)) return 0;
    return (last_departure_ - static_cast<double>(now)) / ns_per_byte_;
  }

  // Decides the fate of a packet of `wire_bytes` bytes (all its segments' headers included)
  // made of `segments` segments arriving at `now`. When it is forwarded, sets *deliver_ns and
  // lists in *lost the indices of the segments lost on the way, in order (usually none).
  Verdict admit(int64_t now, int64_t wire_bytes, int segments, int64_t* deliver_ns,
                std::vector<int>* lost) {
    lost->clear();
    const double t = static_cast<double>(now);
    double departure = t;
    if (ns_per_byte_ > 0) {
      const double backlog = backlogBytes(now);
      if (backlog > 0 && backlog + static_cast<double>(wire_bytes) > queue_bytes_) {
        return Verdict::kQueueDrop;
      }
      departure = std::max(t, last_departure_) + static_cast<double>(wire_bytes) * ns_per_byte_;
      last_departure_ = departure;
    }
    if (keep_ < 1.0) {
      for (int i = 0; i < segments; ++i) {
        if (uniform_(rng_) >= keep_) lost->push_back(i);
      }
      if (!lost->empty() &&
          (whole_packet_loss_ || static_cast<int>(lost->size()) == segments)) {
        return Verdict::kLossDrop;
      }
    }
    double deliver = departure + delay_ns_;
    if (jitter_ns_ > 0) deliver += uniform_(rng_) * jitter_ns_;
    deliver = std::max(deliver, last_delivery_);
    last_delivery_ = deliver;
    *deliver_ns = static_cast<int64_t>(std::ceil(deliver));
    return Verdict::kForward;
  }

 private:
  double delay_ns_;
  double jitter_ns_;
  double ns_per_byte_;
  double keep_;
  bool whole_packet_loss_;
  double queue_bytes_;
  double last_departure_ = 0;
  double last_delivery_ = 0;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

// The default queue: twice the bandwidth-delay product of the round trip, at least 1 MB.
inline int64_t defaultQueueBytes(double rate_mbit, double rtt_ms) {
  const double bdp = rate_mbit * 1e6 / 8 * rtt_ms / 1e3;
  return std::max<int64_t>(1000000, static_cast<int64_t>(2 * bdp));
}

}  // namespace xsite::wanem
