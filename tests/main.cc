#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "vgfs/fault_backend.h"
#include "vgfs/pv_device.h"

// Every PV the unit tests open is wrapped in a FaultBackend that follows
// FaultInjector::Scope, so a test can inject faults into PVs a VgStore
// opened before (include/vgfs/fault_injector.h).
static const bool pvs_wrapped = (vgfs::PvDevice::set_backend_wrapper(&vgfs::FaultBackend::wrap_for_scope), true);
