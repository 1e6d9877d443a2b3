// SPDX-License-Identifier: MIT
package org.pimoe;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The C library's own outputs, written by bindings/reference/reference.c (the ctest fixture bindings_reference). */
final class Reference {
  final long batch, seq, hidden;
  final int topK, numExperts;
  final long tensorCount;
  final float[] input, output, weights, router;
  final int[] ids;
  final long[] loads;
  final long forwardCalls, tokens, dropped;
  final double[] metrics; // utilization, cv, max violation, jain, entropy, confidence, aux, z

  static Path dir() {
    String d = System.getProperty("pimoe.test.reference");
    if (d == null) {
      throw new IllegalStateException("run with -Dpimoe.test.reference=DIR (ctest does)");
    }
    return Paths.get(d);
  }

  Reference(String name) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(dir().resolve("case_" + name + ".bin")))
        .order(ByteOrder.nativeOrder());
    batch = b.getLong();
    seq = b.getLong();
    hidden = b.getLong();
    topK = (int) b.getLong();
    numExperts = (int) b.getLong();
    tensorCount = b.getLong();
    int n = (int) (batch * seq * hidden);
    int r = (int) (batch * seq * topK);
    input = floats(b, n);
    output = floats(b, n);
    ids = new int[r];
    for (int i = 0; i < r; ++i) {
      ids[i] = b.getInt();
    }
    weights = floats(b, r);
    loads = new long[numExperts];
    for (int i = 0; i < numExperts; ++i) {
      loads[i] = b.getLong();
    }
    forwardCalls = b.getLong();
    tokens = b.getLong();
    dropped = b.getLong();
    metrics = new double[8];
    for (int i = 0; i < 8; ++i) {
      metrics[i] = b.getDouble();
    }
    router = floats(b, (int) (numExperts * hidden));
    if (b.hasRemaining()) {
      throw new IOException("trailing bytes in case_" + name + ".bin");
    }
  }

  private static float[] floats(ByteBuffer b, int n) {
    float[] out = new float[n];
    for (int i = 0; i < n; ++i) {
      out[i] = b.getFloat();
    }
    return out;
  }

  /** errors.txt: scenario name to {status, message}. */
  static Map<String, String[]> errors() throws IOException {
    Map<String, String[]> map = new LinkedHashMap<>();
    List<String> lines = Files.readAllLines(dir().resolve("errors.txt"));
    for (String line : lines) {
      String[] parts = line.split("\t", 3);
      map.put(parts[0], new String[] {parts[1], parts[2]});
    }
    return map;
  }

  /** The options of reference.c's options_basic(), through the typed setters. */
  static Options basicOptions() {
    return new Options().hidden(64).numExperts(8).topK(2).intermediate(96).seed(7).deterministic(true).threads(2)
        .backend("cpu");
  }

  /** The options of reference.c's options_rich(): every key and every kind of per-expert override. */
  static Options richOptions() {
    return new Options().hidden(48).numExperts(6).topK(3).intermediate(64).activation(Activation.SILU)
        .preNorm(true).expertBias(true).temperature(0.7).renormalize(false).capacityFactor(0.75).auxLossCoef(0.01)
        .layerNormEps(1e-6).seed(11).threads(1).backend("cpu").deterministic(true).cpuGemm("packed")
        .expertPreset(Options.ALL_EXPERTS, ExpertPreset.CREATIVE).expertPreset(0, ExpertPreset.REASONING)
        .expertPreset(1, ExpertPreset.COMPUTATION).expertPreset(2, ExpertPreset.LANGUAGE)
        .expertActivation(3, Activation.RELU).expertWidth(4, 40).expertPreNorm(5, false)
        .expertPreset(5, ExpertPreset.GENERIC);
  }

  /**
   * reference.c's add_compact_weights(), through the typed setters: an int4 layer (64-element groups with zero points)
   * whose expert 0 is kept at bf16 and expert 3 at int8.
   */
  static Options addCompactWeights(Options o) {
    return o.weightDtype("int4").weightGroupSize(64).weightZeroPoint(true).expertWeightDtype(0, "bf16")
        .expertWeightDtype(3, "int8");
  }

  /** The options of reference.c's options_compact(): compact weights on the basic model. */
  static Options compactOptions() {
    return addCompactWeights(basicOptions());
  }

  static java.nio.FloatBuffer directFloats(int n) {
    return ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  static java.nio.IntBuffer directInts(int n) {
    return ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asIntBuffer();
  }
}
