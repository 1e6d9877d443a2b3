// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Compact weights: weightDtype's formats, weightGroupSize, weightZeroPoint and expertWeightDtype. The outputs equal
 * the C library's bit for bit in ReferenceTest ("compact"); here, what the formats do to the model.
 */
class CompactWeightsTest {
  private static float[] input(int n) {
    float[] x = new float[n];
    for (int i = 0; i < n; ++i) {
      x[i] = (float) Math.sin(0.37 * i);
    }
    return x;
  }

  private static void assertFinite(float[] y, String what) {
    for (int i = 0; i < y.length; ++i) {
      assertTrue(Float.isFinite(y[i]), what + ": output[" + i + "] = " + y[i]);
    }
  }

  @Test
  void int4LayerWithABf16ExpertIsSmallAndComputes() {
    float[] x = input(2 * 3 * 64);
    try (Model compact = Model.create(Reference.compactOptions());
         Model fp32 = Model.create(Reference.basicOptions());
         Model int4 = Model.create(Reference.basicOptions().weightDtype("int4").weightGroupSize(64)
                                       .weightZeroPoint(true))) {
      float[] y = compact.forward(x, 2, 3);
      assertFinite(y, "compact");
      assertFalse(java.util.Arrays.equals(y, fp32.forward(x, 2, 3)), "the int4 layer computes as the fp32 one");

      // Weight memory: well below the fp32 layer's; the bf16 and int8 experts cost more than int4 ones would.
      long wc = compact.stats().weightBytes;
      long wf = fp32.stats().weightBytes;
      long w4 = int4.stats().weightBytes;
      assertTrue(wc > 0 && 3 * wc < wf && w4 < wc, "weight bytes: compact " + wc + ", fp32 " + wf + ", int4 " + w4);

      // The values read back are the stored ones: expert 0's are bf16 numbers, expert 1's int4 codes times a scale
      // (at most 16 values in a group of 64 inputs: one row of up.weight, [96, 64]).
      for (float v : compact.readTensor("experts.0.up.weight")) {
        assertEquals(0, Float.floatToRawIntBits(v) & 0xffff, v + " is no bf16 value");
      }
      assertArrayEquals(new long[] {96, 64}, compact.tensorShape("experts.1.up.weight"));
      float[] e1 = compact.readTensor("experts.1.up.weight");
      for (int row = 0; row < 96; ++row) {
        java.util.Set<Float> distinct = new java.util.HashSet<>();
        for (int c = 0; c < 64; ++c) {
          distinct.add(e1[row * 64 + c]);
        }
        assertTrue(distinct.size() <= 16, "experts.1.up.weight row " + row + ": " + distinct.size() + " values");
      }
    }
  }

  @Test
  void everyStorageFormatIsAcceptedLayerWideAndPerExpert() {
    float[] x = input(64);
    for (String dtype : new String[] {"auto", "fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4"}) {
      Options o = Reference.basicOptions().weightDtype(dtype);
      if (!dtype.equals("auto")) {
        o.expertWeightDtype(Options.ALL_EXPERTS, dtype).expertWeightDtype(2, "fp32");
      }
      try (Model m = Model.create(o)) {
        assertFinite(m.forward(x, 1, 1), dtype);
      }
    }
  }

  @Test
  void badFormatsThrowTheLibrarysStatusAndMessage() {
    PimoeException ex = assertThrows(PimoeException.class,
        () -> Model.create(Reference.basicOptions().expertWeightDtype(1, "auto")).close());
    assertEquals(Status.INVALID_OPTION, ex.status());
    assertEquals("pimoe_options_set_expert_weight_dtype: weight_dtype 'auto' is not a storage format (fp32, bf16, "
                 + "fp16, int8, int4, fp8_e4m3, mxfp4)", ex.getMessage());
    ex = assertThrows(PimoeException.class,
        () -> Model.create(Reference.basicOptions().expertWeightDtype(0, null)).close());
    assertEquals(Status.NULL_POINTER, ex.status());
    assertTrue(ex.getMessage().contains("weight_dtype is NULL"), ex.getMessage());
    ex = assertThrows(PimoeException.class, () -> Model.create(Reference.basicOptions().weightGroupSize(256)).close());
    assertEquals(Status.INVALID_OPTION, ex.status());
    assertTrue(ex.getMessage().contains("weight_group_size"), ex.getMessage());
    ex = assertThrows(PimoeException.class, () -> Model.create(Reference.basicOptions().weightDtype("int3")).close());
    assertEquals(Status.INVALID_OPTION, ex.status());
    assertTrue(ex.getMessage().contains("'int3'"), ex.getMessage());
  }
}
