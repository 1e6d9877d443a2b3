// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every error scenario of reference.c, run through the binding: a PimoeException with the same status and the same
 * message as the C library gave the C program. Plus the binding's own argument checks.
 */
class ErrorsTest {
  private static Executable create(Options o) {
    return () -> Model.create(o).close();
  }

  @Test
  void everyCErrorMapsToPimoeExceptionWithTheLibrarysStatusAndMessage() throws Exception {
    Map<String, String[]> expected = Reference.errors();
    try (Model m = Model.create(Reference.basicOptions())) {
      float[] x = new float[128];
      float[] y = new float[128];
      float[] nan = new float[128];
      nan[70] = Float.NaN;
      Map<String, Executable> scenarios = new LinkedHashMap<>();
      scenarios.put("unknown_option_name", create(Reference.basicOptions().set("no_such_option", "1")));
      scenarios.put("wrong_type", create(Reference.basicOptions().setInt(OptionKey.TEMPERATURE, 1)));
      scenarios.put("bad_value_by_name", create(Reference.basicOptions().set("top_k", "abc")));
      scenarios.put("hidden_zero", create(Reference.basicOptions().hidden(0)));
      scenarios.put("bad_activation_name", create(Reference.basicOptions().set("activation", "mish")));
      scenarios.put("negative_width", create(Reference.basicOptions().expertWidth(0, -5)));
      scenarios.put("bad_temperature", create(Reference.basicOptions().temperature(-1.0)));
      scenarios.put("bad_expert_weight_dtype", create(Reference.basicOptions().expertWeightDtype(0, "int3")));
      scenarios.put("top_k_exceeds", create(Reference.basicOptions().topK(9)));
      scenarios.put("expert_index", create(Reference.basicOptions().expertPreset(9, ExpertPreset.LOGICAL)));
      scenarios.put("bad_weight_group_size", create(Reference.basicOptions().weightGroupSize(48)));
      scenarios.put("bad_backend", create(Reference.basicOptions().backend("no_such_backend")));
      scenarios.put("cuda_backend", create(Reference.basicOptions().backend("cuda")));
      scenarios.put("input_size_mismatch", () -> m.forward(new float[100], 2, 1, y));
      scenarios.put("output_size_mismatch", () -> m.forward(x, 2, 1, new float[64]));
      scenarios.put("routing_size_mismatch", () -> m.forward(x, 2, 1, y, new int[3], new float[3]));
      scenarios.put("batch_zero", () -> m.forward(x, 0, 2, y));
      scenarios.put("null_input", () -> m.forward((float[]) null, 2, 1, y));
      scenarios.put("null_output", () -> m.forward(x, 2, 1, (float[]) null));
      scenarios.put("non_finite_input", () -> m.forward(nan, 2, 1, y, new int[4], new float[4]));
      scenarios.put("tensor_not_found", () -> m.tensorShape("no.such.tensor"));
      scenarios.put("tensor_read_count", () -> m.readTensor("router.weight", new float[4]));
      scenarios.put("expert_out_of_range", () -> m.expert(99));
      scenarios.put("probe_unknown", () -> Pimoe.backendUsable("no_such_backend"));
      String dir = Reference.dir().toString();
      scenarios.put("load_missing", () -> Model.load(dir + "/no_such_file.safetensors").close());
      scenarios.put("load_not_a_model", () -> Model.load(dir + "/errors.txt").close());
      scenarios.put("save_unwritable", () -> m.save(dir + "/no_such_dir/model.safetensors"));
      assertEquals(expected.keySet(), scenarios.keySet(), "every scenario of reference.c is run here");

      for (Map.Entry<String, Executable> e : scenarios.entrySet()) {
        String[] want = expected.get(e.getKey());
        PimoeException ex = assertThrows(PimoeException.class, e.getValue(), e.getKey());
        assertEquals(Integer.parseInt(want[0]), ex.code(), e.getKey() + ": status");
        assertEquals(want[1], ex.getMessage(), e.getKey() + ": message");
        assertEquals(ex.code(), ex.status().code());
      }
      // The failed calls on the model were recorded on it; the model still works.
      assertThrows(PimoeException.class, () -> m.forward(nan, 2, 1, y));
      assertEquals(expected.get("non_finite_input")[1], m.lastError());
      m.forward(x, 2, 1, y);
      assertEquals(1, m.stats().forwardCalls);
    }
  }

  @Test
  void directBufferErrorsComeFromTheLibraryToo() throws Exception {
    Map<String, String[]> expected = Reference.errors();
    try (Model m = Model.create(Reference.basicOptions())) {
      FloatBuffer in = Reference.directFloats(100);
      FloatBuffer out = Reference.directFloats(128);
      PimoeException ex = assertThrows(PimoeException.class, () -> m.forward(in, 2, 1, out));
      assertEquals(Status.SIZE_MISMATCH, ex.status());
      assertEquals(expected.get("input_size_mismatch")[1], ex.getMessage());
      ex = assertThrows(PimoeException.class, () -> m.forward((FloatBuffer) null, 2, 1, out));
      assertEquals(Status.NULL_POINTER, ex.status());
      assertEquals(expected.get("null_input")[1], ex.getMessage());
    }
  }

  @Test
  void bindingArgumentChecks() {
    try (Model m = Model.create(Reference.basicOptions())) {
      FloatBuffer heap = FloatBuffer.allocate(128);
      FloatBuffer out = Reference.directFloats(128);
      PimoeException ex = assertThrows(PimoeException.class, () -> m.forward(heap, 2, 1, out));
      assertEquals(Status.INVALID_ARGUMENT, ex.status());
      assertTrue(ex.getMessage().contains("input is not a direct buffer"), ex.getMessage());

      ByteOrder other = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN ? ByteOrder.BIG_ENDIAN
                                                                           : ByteOrder.LITTLE_ENDIAN;
      FloatBuffer swapped = ByteBuffer.allocateDirect(4 * 128).order(other).asFloatBuffer();
      ex = assertThrows(PimoeException.class, () -> m.forward(out, 2, 1, swapped));
      assertEquals(Status.INVALID_ARGUMENT, ex.status());
      assertTrue(ex.getMessage().contains("output is not in the native byte order"), ex.getMessage());

      FloatBuffer readOnly = Reference.directFloats(128).asReadOnlyBuffer();
      ex = assertThrows(PimoeException.class, () -> m.forward(out, 2, 1, readOnly));
      assertTrue(ex.getMessage().contains("output is read-only"), ex.getMessage());

      ex = assertThrows(PimoeException.class,
                        () -> m.forward(new float[128], 2, 1, new float[128], new int[4], new float[5]));
      assertEquals(Status.SIZE_MISMATCH, ex.status());
      assertTrue(ex.getMessage().contains("expertIds.length (4) != expertWeights.length (5)"), ex.getMessage());
    }
  }
}
