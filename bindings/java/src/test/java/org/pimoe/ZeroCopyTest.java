// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Zero copy, checked against what the C library was actually given. Runs only with the probe preloaded (ctest
 * java_zero_copy): the probe interposes pimoe_forward and records the pointers the JNI library passed.
 */
@Tag("zerocopy")
class ZeroCopyTest {
  static {
    System.load(System.getProperty("pimoe.test.probe"));
  }

  static native long[] lastForwardPointers();

  static native long directAddress(java.nio.Buffer buffer);

  static native long[] criticalAddress(float[] array);

  @Test
  void directBuffersReachTheLibraryUncopied() throws Exception {
    Reference ref = new Reference("basic");
    try (Model m = Model.create(Reference.basicOptions())) {
      int n = ref.input.length;
      int r = ref.ids.length;
      FloatBuffer in = Reference.directFloats(n);
      in.put(ref.input).flip();
      FloatBuffer out = Reference.directFloats(n);
      IntBuffer ids = Reference.directInts(r);
      FloatBuffer weights = Reference.directFloats(r);
      m.forward(in, ref.batch, ref.seq, out, ids, weights);
      long[] p = lastForwardPointers();
      assertEquals(directAddress(in), p[0], "input pointer");
      assertEquals(directAddress(out), p[1], "output pointer");
      assertEquals(directAddress(ids), p[2], "ids pointer");
      assertEquals(directAddress(weights), p[3], "weights pointer");
      float[] got = new float[n];
      out.get(got);
      assertArrayEquals(ref.output, got, 0.0f);

      // A buffer at a non-zero position: the library gets the address of element `position`, still no copy.
      FloatBuffer big = Reference.directFloats(n + 5);
      big.position(5);
      big.put(ref.input).position(5);
      out.clear();
      m.forward(big, ref.batch, ref.seq, out);
      assertEquals(directAddress(big) + 4L * 5, lastForwardPointers()[0], "input pointer at position 5");
    }
  }

  @Test
  void floatArraysArePinnedNotCopied() throws Exception {
    Reference ref = new Reference("basic");
    try (Model m = Model.create(Reference.basicOptions())) {
      float[] in = ref.input.clone();
      float[] out = new float[in.length];
      // A GC between the probe's pin and the forward could move the arrays: retry a few times in that case.
      long[] pinned = null;
      long[] p = null;
      long outAddress = 0;
      for (int attempt = 0; attempt < 5; ++attempt) {
        pinned = criticalAddress(in);
        outAddress = criticalAddress(out)[0];
        m.forward(in, ref.batch, ref.seq, out);
        p = lastForwardPointers();
        if (p[0] == pinned[0] && p[1] == outAddress) {
          break;
        }
      }
      assertEquals(0, pinned[1], "the JVM pins float[] in critical regions (isCopy false)");
      assertEquals(pinned[0], p[0], "input pointer is the array's own storage");
      assertEquals(outAddress, p[1], "output pointer is the array's own storage");
      assertArrayEquals(ref.output, out, 0.0f);
    }
  }
}
