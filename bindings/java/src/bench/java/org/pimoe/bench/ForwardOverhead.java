// SPDX-License-Identifier: MIT
package org.pimoe.bench;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Locale;
import org.pimoe.Model;
import org.pimoe.Options;

/**
 * Overhead of one Java forward call over the C call: shape S (hidden 512, 8 experts, top-2, intermediate 2048) at
 * 1 token, timed like src/bench/c/forward_c.c times pimoe_forward from C (best of 5 rounds), through float[] and
 * through direct FloatBuffers; and the same on a tiny layer whose own work is negligible, which isolates the
 * binding's cost. Compare with the C program's lines (the pimoe_java_bench target prints both).
 *   java ... org.pimoe.bench.ForwardOverhead [calls]      (default 2000; the tiny layer runs 100x as many)
 */
public final class ForwardOverhead {
  private ForwardOverhead() {}

  /**
   * {best wall time per call, best (wall time per call - the library's own latency_mean over the same round)}, in
   * microseconds, over 5 rounds. The second is paired per round, so machine load cancels out of it: it is the cost
   * of the call outside the library's timer (JNI, the binding's checks and lock, the C function's entry).
   */
  private static double[] bestRound(Model m, Runnable call, int calls) {
    for (int i = 0; i < Math.max(calls / 4, 1000); ++i) {
      call.run(); // warm-up: JIT compilation of the whole path
    }
    double best = Double.MAX_VALUE;
    double bestOutside = Double.MAX_VALUE;
    for (int round = 0; round < 5; ++round) {
      m.resetStats();
      long t0 = System.nanoTime();
      for (int i = 0; i < calls; ++i) {
        call.run();
      }
      double perCall = (System.nanoTime() - t0) / (double) calls;
      double outside = perCall - m.stats().latencyMeanMs * 1e6;
      best = Math.min(best, perCall);
      bestOutside = Math.min(bestOutside, outside);
    }
    return new double[] {best / 1e3, bestOutside / 1e3};
  }

  private static void run(String label, Options options, int calls) {
    try (Model m = Model.create(options)) {
      int h = (int) m.hidden();
      float[] x = new float[h];
      for (int i = 0; i < h; ++i) {
        x[i] = ((i * 37) % 101) / 50.0f - 1.0f;
      }
      float[] y = new float[h];
      FloatBuffer in = ByteBuffer.allocateDirect(4 * h).order(ByteOrder.nativeOrder()).asFloatBuffer();
      in.put(x).flip();
      FloatBuffer out = ByteBuffer.allocateDirect(4 * h).order(ByteOrder.nativeOrder()).asFloatBuffer();
      double[] arrays = bestRound(m, () -> m.forward(x, 1, 1, y), calls);
      double[] buffers = bestRound(m, () -> m.forward(in, 1, 1, out), calls);
      System.out.printf(Locale.ROOT, "Java  forward(float[]),     %-10s 1 token: %9.3f us/call, outside the library's"
          + " timer %6.3f us%n", label, arrays[0], arrays[1]);
      System.out.printf(Locale.ROOT, "Java  forward(FloatBuffer), %-10s 1 token: %9.3f us/call, outside the library's"
          + " timer %6.3f us%n", label, buffers[0], buffers[1]);
    }
  }

  public static void main(String[] args) {
    int calls = args.length > 0 ? Integer.parseInt(args[0]) : 2000;
    run("shape S,", new Options().backend("cpu"), calls);
    run("tiny layer", new Options().backend("cpu").hidden(8).numExperts(2).topK(1).intermediate(8), calls * 100);
  }
}
