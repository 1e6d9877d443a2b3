// SPDX-License-Identifier: MIT
package org.pimoe;

import java.util.ArrayList;
import java.util.List;

/** Library-wide queries: version, build, backends and devices. */
public final class Pimoe {
  private Pimoe() {}

  /** The library's version, "MAJOR.MINOR.PATCH". */
  public static String version() {
    return pimoeJNI.pimoeVersionString();
  }

  /** major*10000 + minor*100 + patch. */
  public static long versionNumber() {
    return pimoeJNI.pimoeVersionNumber();
  }

  /** The ABI major version (the N of libpimoe.so.N). */
  public static long abiVersion() {
    return pimoeJNI.pimoeAbiVersion();
  }

  /** One line describing the build: backends, BLAS, compiler. */
  public static String buildInfo() {
    return pimoeJNI.pimoeBuildInfo();
  }

  /** The library's static text for a status. */
  public static String statusString(Status status) {
    return pimoeJNI.pimoeStatusString(status.code());
  }

  /** Backends compiled into this build, in order of preference. */
  public static List<String> backends() {
    int n = pimoeJNI.pimoeBackendCount();
    List<String> names = new ArrayList<>(n);
    for (int i = 0; i < n; ++i) {
      names.add(pimoeJNI.pimoeBackendName(i));
    }
    return names;
  }

  /**
   * Whether a backend ("cpu", "cuda", "vulkan", "vulkan:N", "auto") can run here. An unknown name throws
   * ({@link Status#NOT_FOUND}).
   */
  public static boolean backendUsable(String name) {
    int[] usable = new int[1];
    pimoeJNI.pimoeBackendProbe(name, usable);
    return usable[0] != 0;
  }

  /** A description of the device a backend would use here, or null if it is unknown or unusable. */
  public static String backendDevice(String name) {
    return pimoeJNI.pimoeBackendDevice(name);
  }

  /** Where the JNI library was loaded from. */
  public static String nativeSource() {
    NativeLoader.load();
    return NativeLoader.source();
  }
}
