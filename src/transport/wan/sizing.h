// How large a WAN link's staging window and socket buffers start (wan.cc defines these).
#pragma once

#include <cstddef>
#include <string>

namespace xsite::transport::wan {

// Sizing of a WAN link from its bandwidth-delay product (rate, one-way latency), at connect: four
// BDPs of socket buffer spread over the streams (1..64 MiB each; 0, the kernel's autotuning, where
// that reaches it: net.ipv4.tcp_wmem and tcp_rmem), and a staging window of eight
// BDPs (at least 4 MiB) unless `windowBytes` > 0 sets it: a frame leaves the window only when it is
// acknowledged, so the window holds what sits in the socket buffers and what is in flight
// (with four BDPs, 0.1% loss at 40 ms cut goodput from 89% to 73%). Pages of the window cost
// memory only once used. Shared by Fabric and the NCCL net plugin. From then on the path decides
// (WanLink::adapt()): the rate and latency are the first guess only.
struct WanSizing {
  int socketBytes;  // 0: leave the kernel's autotuning on
  size_t windowBytes;
  bool fixedWindow;  // windowBytes was asked for: WanLink::adapt() leaves it
};
WanSizing wanSizing(double rateMbit, double latencyUs, int streams, size_t windowBytes) noexcept;
// Socket set-up of one WAN stream: buffer sizes (before connect(), or on the listener before
// listen() so accepted sockets inherit them), then congestion control `cc` (empty: the kernel
// default), which the setting `ccVariable` chose. A refused `cc` is warned of once per process
// (which one the socket uses, how to load it); the socket is usable either way.
void prepareWanSocket(int fd, int socketBytes, const std::string& cc, const char* ccVariable) noexcept;

}  // namespace xsite::transport::wan
