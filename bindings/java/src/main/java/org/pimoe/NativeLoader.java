// SPDX-License-Identifier: MIT
package org.pimoe;

import java.io.IOException;
import java.io.InputStream;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads the JNI library {@code libpimoe_java} (which needs {@code libpimoe}):
 * <ol>
 *   <li>from the file named by the system property {@code pimoe.library} if set;</li>
 *   <li>else from {@code java.library.path} ({@code System.loadLibrary("pimoe_java")});</li>
 *   <li>else, unless {@code -Dpimoe.native.extract=false}, from the copies bundled in the jar under
 *       {@code org/pimoe/native/<os>-<arch>/}, extracted to a temporary folder (libpimoe first, then the JNI
 *       library, in the order of that folder's {@code index} file).</li>
 * </ol>
 */
final class NativeLoader {
  private static boolean loaded;
  private static String source = "";

  private NativeLoader() {}

  static synchronized void load() {
    if (loaded) {
      return;
    }
    String explicit = System.getProperty("pimoe.library");
    if (explicit != null && !explicit.isEmpty()) {
      System.load(explicit);
      source = explicit;
      loaded = true;
      return;
    }
    try {
      System.loadLibrary("pimoe_java");
      source = "java.library.path";
      loaded = true;
      return;
    } catch (UnsatisfiedLinkError e) {
      if ("false".equals(System.getProperty("pimoe.native.extract"))) {
        throw e;
      }
      try {
        source = extractAndLoad();
        loaded = true;
      } catch (IOException | UnsatisfiedLinkError e2) {
        UnsatisfiedLinkError error = new UnsatisfiedLinkError(
            "libpimoe_java: not on java.library.path (" + e.getMessage() + ") and not loadable from the jar ("
                + e2.getMessage() + ")");
        error.initCause(e2);
        throw error;
      }
    }
  }

  /** Where the natives came from: a path, "java.library.path" or "jar:" plus the extraction folder. */
  static synchronized String source() {
    return source;
  }

  private static String platform() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    if (arch.equals("amd64")) {
      arch = "x86_64";
    }
    if (os.startsWith("linux")) {
      os = "linux";
    }
    return os + "-" + arch;
  }

  private static String extractAndLoad() throws IOException {
    String base = "/org/pimoe/native/" + platform() + "/";
    List<String> names = new ArrayList<>();
    try (InputStream index = NativeLoader.class.getResourceAsStream(base + "index")) {
      if (index == null) {
        throw new IOException("no bundled natives for " + platform() + " in the jar");
      }
      BufferedReader reader = new BufferedReader(new InputStreamReader(index, StandardCharsets.UTF_8));
      for (String line = reader.readLine(); line != null; line = reader.readLine()) {
        if (!line.isBlank()) {
          names.add(line.trim());
        }
      }
    }
    Path dir = Files.createTempDirectory("pimoe-native");
    dir.toFile().deleteOnExit();
    for (String name : names) {
      Path file = dir.resolve(name);
      try (InputStream in = NativeLoader.class.getResourceAsStream(base + name)) {
        if (in == null) {
          throw new IOException("bundled native " + name + " is missing from the jar");
        }
        Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
      }
      file.toFile().deleteOnExit();
      System.load(file.toAbsolutePath().toString());
    }
    return "jar:" + dir;
  }
}
