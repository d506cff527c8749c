// The one way a symbol leaves the plugin: default visibility (everything else is built hidden,
// and plugin/exports.map lists the same names for the linker).
#pragma once

#define XSITE_EXPORT __attribute__((visibility("default")))
