/* SPDX-License-Identifier: MIT */
/* volk's implementation, compiled with its symbols renamed (pimoe_volk_rename.h) and hidden (the library's default
 * visibility), so that neither a shared nor a static libpimoe exposes or takes over a host application's Vulkan
 * symbols. */
#include "pimoe_volk_rename.h"

#include <volk.c>
