"""xsite-run's code: the launcher of an emulated superfactory (tools/xsite-run runs cli.main).

Modules, each importing only those below it:
  cli       arguments, the topology banner, main: one launch from start to cleanup
  launch    the ranks: environment, spawn, prefixed output, supervision, exit code
  netns     netns mode: namespaces, bridges, TUN/veth links, emulators, stale cleanup
  relay     loopback mode's WAN: one xsite-wanrelay process
  wan       link parameters (presets, --wan-*), finding, starting and stopping the emulators
  topology  ranks, sites, domains, address plans (IPv4, IPv6), the hostfile
  common    messages, errors, the signals the launcher received
See docs/launcher.md.
"""
