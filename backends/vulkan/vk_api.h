/* SPDX-License-Identifier: MIT */
// The Vulkan API as the backend sees it: volk's loader (compiled into libpimoe with its symbols renamed to
// pimoe_volk_*, see vulkan.cmake), so libvulkan.so.1 is opened at run time and never linked.
#pragma once

#include "pimoe_volk_rename.h"

#include <volk.h>
