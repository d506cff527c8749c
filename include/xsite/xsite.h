// xsite: cross-site collective communication. The whole public API.
#pragma once

#include "xsite/communicator.h"
#include "xsite/error.h"
#include "xsite/store.h"
#include "xsite/types.h"
#include "xsite/version.h"
