/* SPDX-License-Identifier: MIT */
/* Preloaded (LD_PRELOAD) by the "no Vulkan loader" test: dlopen of any libvulkan fails, as on a machine where the
 * package is not installed. Every other dlopen goes to the C library's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

/* Exported (the build hides symbols by default) under the versions of the C library's dlopen: the default version, which new links (libpimoe's) reference; older binaries' dlopen@GLIBC_2.2.5 gets it too. */
__asm__(".symver hidden_dlopen, dlopen@@GLIBC_2.34");
__asm__(".symver hidden_dlopen_old, dlopen@GLIBC_2.2.5");

__attribute__((visibility("default"))) void *hidden_dlopen(const char *file, int mode);
__attribute__((visibility("default"))) void *hidden_dlopen_old(const char *file, int mode);

void *hidden_dlopen(const char *file, int mode) {
  static void *(*real_dlopen)(const char *, int);
  if (!real_dlopen) real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
  if (file && strstr(file, "libvulkan")) return NULL;
  return real_dlopen(file, mode);
}

void *hidden_dlopen_old(const char *file, int mode) {
  return hidden_dlopen(file, mode);
}
