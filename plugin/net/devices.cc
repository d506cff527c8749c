#include "plugin/net/devices.h"

#include "transport/nic/nic.h"
#include "transport/transport.h"
#include "util/log.h"
#include "util/params.h"
#include "util/status.h"

namespace xsite::plugin::net {

bool sameSiteOverUcx(const params::Params& params) {
  return transport::sameSiteBackend(params) == transport::Backend::kUcx;
}

const std::vector<Device>& processDevices() {
  static const std::vector<Device> devices = discoverDevices(params::Params::global());
  return devices;
}

std::vector<Device> discoverDevices(const params::Params& params) {
  const bool rdma = sameSiteOverUcx(params);
  const auto addrs = transport::nic::addressByInterface(params);
  const std::string loopbackIp = transport::nic::loopbackAddress(params);
  transport::nic::DiscoverOptions options;
  options.useVerbs = rdma;  // RDMA ports are devices only where UCX carries same-site comms
  const auto found = transport::nic::discoverNics(params, options);
  using transport::nic::NicInfo;
  auto fromNic = [](const NicInfo& nic, const std::string& ip) {
    Device d;
    d.name = nic.label();  // "mlx5_0:1" for an RDMA port, the interface name otherwise
    d.pciPath = nic.pciPath;
    d.ip = ip;
    d.speedMbps = nic.speedMbps;
    d.guid = nic.guid;
    d.ucxNetDevice = transport::nic::ucxNetDevice(nic);
    return d;
  };
  // The address an RDMA port's setup socket binds to: its own netdev's (IPoIB, RoCE), else
  // the first other interface that has one (setup only; the bytes go through UCX on the port).
  auto ipFor = [&](const NicInfo& nic) -> std::string {
    if (auto it = addrs.find(nic.netdev); !nic.netdev.empty() && it != addrs.end())
      return it->second;
    for (const auto& [name, ip] : addrs)
      if (name != "lo") return ip;
    return addrs.count("lo") ? addrs.at("lo") : loopbackIp;
  };

  std::vector<Device> devices;
  if (params.isSet(params::Id::kListenAddr)) {
    const std::string& want = params.string(params::Id::kListenAddr);
    Device d;
    d.ip = want;
    d.name = "listen-addr";
    for (const auto& [name, ip] : addrs)
      if (ip == want) d.name = name;
    for (const auto& nic : found.all)
      if (nic.name == d.name || (nic.kind == NicInfo::Kind::kRdma && nic.netdev == d.name))
        d = fromNic(nic, want);
    devices.push_back(d);
    XSITE_INFO(kNet, "net: one device, %s (%s) from XSITE_LISTEN_ADDR", d.name.c_str(),
               want.c_str());
  } else {
    for (const auto& nic : found.selected.nics) {
      if (nic.kind == NicInfo::Kind::kRdma) {
        devices.push_back(fromNic(nic, ipFor(nic)));
        continue;
      }
      auto it = addrs.find(nic.name);
      if (it == addrs.end()) {
        XSITE_INFO(kNet, "net: %s has no address (NCCL_SOCKET_FAMILY %s); not a device",
                   nic.name.c_str(),
                   params.isSet(params::Id::kNcclSocketFamily)
                       ? params.string(params::Id::kNcclSocketFamily).c_str()
                       : "unset");
        continue;
      }
      devices.push_back(fromNic(nic, it->second));
    }
    if (devices.empty()) {
      Device d;
      d.name = "lo";
      d.ip = loopbackIp;
      d.fallback = true;
      devices.push_back(d);
      XSITE_WARN(kNet,
                 "net: no usable network interface with an address (this host has: %s); "
                 "using loopback, which reaches this host only: peers in other sites will refuse "
                 "its handles",
                 transport::nic::describeCandidates(params).c_str());
    }
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    // No chip id for an IP interface: the index, as NCCL_ABI.md advises. RDMA ports keep the
    // node GUID (ports of one device share it, and NCCL pairs it with the port number).
    if (devices[i].ucxNetDevice.empty()) devices[i].guid = i;
    XSITE_INFO(kNet, "net: device %zu = %s %s speed %d Mbps%s pci %s%s%s", i, devices[i].name.c_str(),
               devices[i].ip.c_str(),
               devices[i].speedMbps > 0 ? devices[i].speedMbps : kDefaultSpeedMbps,
               devices[i].speedMbps > 0 ? "" : " (unknown: default)",
               devices[i].pciPath.empty() ? "none" : devices[i].pciPath.c_str(),
               devices[i].ucxNetDevice.empty() ? "" : ", UCX pinned to ",
               devices[i].ucxNetDevice.c_str());
  }
  return devices;
}

void fillProperties(const Device& device, int index, ncclNetProperties_v11_t* props) {
  *props = ncclNetProperties_v11_t{};
  props->name = const_cast<char*>(device.name.c_str());
  props->pciPath = device.pciPath.empty() ? nullptr : const_cast<char*>(device.pciPath.c_str());
  props->guid = device.guid;
  props->ptrSupport = NCCL_PTR_HOST;
  props->regIsGlobal = 0;
  props->forceFlush = 0;
  props->speed = device.speedMbps > 0 ? device.speedMbps : kDefaultSpeedMbps;
  props->port = 0;
  props->latency = 0;  // per peer, not per device (LAN or WAN): the tuner carries WAN cost
  props->maxComms = kMaxComms;
  props->maxRecvs = kMaxRecvs;
  props->netDeviceType = NCCL_NET_DEVICE_HOST;
  props->netDeviceVersion = NCCL_NET_DEVICE_INVALID_VERSION;
  props->vProps.ndevs = 1;
  props->vProps.devs[0] = index;
  props->maxP2pBytes = kMaxP2pBytes;
  props->maxCollBytes = kMaxCollBytes;
  props->maxMultiRequestSize = 1;
}

const Device& deviceAt(const std::vector<Device>& devices, int dev, const char* who) {
  if (dev < 0 || dev >= static_cast<int>(devices.size()))
    throw Error(ErrorCategory::kInternal, std::string(who) + " device " + std::to_string(dev) +
                                              " does not exist (" +
                                              std::to_string(devices.size()) + " devices)");
  return devices[static_cast<size_t>(dev)];
}

}  // namespace xsite::plugin::net
