// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Outputs, routing, statistics and tensors through the binding equal the C library's own, bit for bit. */
class ReferenceTest {
  private static void checkCase(String name, Options options) throws Exception {
    Reference ref = new Reference(name);
    try (Model m = Model.create(options)) {
      assertEquals(ref.hidden, m.hidden());
      assertEquals(ref.numExperts, m.numExperts());
      assertEquals(ref.topK, m.topK());
      assertEquals("cpu", m.backend());

      // float[] with routing: the first call, so the statistics match the C program's single call.
      Model.Routed routed = m.forwardRouted(ref.input, ref.batch, ref.seq);
      assertArrayEquals(ref.output, routed.output, 0.0f, name + ": output");
      assertArrayEquals(ref.ids, routed.expertIds, name + ": expert ids");
      assertArrayEquals(ref.weights, routed.expertWeights, 0.0f, name + ": expert weights");
      assertArrayEquals(ref.loads, m.expertLoads(), name + ": expert loads");

      Stats s = m.stats();
      assertEquals(ref.forwardCalls, s.forwardCalls);
      assertEquals(ref.tokens, s.tokens);
      assertEquals(ref.dropped, s.droppedTokens);
      assertEquals(ref.numExperts, s.numExperts);
      double[] got = {s.expertUtilization, s.loadCv, s.loadMaxViolation, s.loadJainIndex, s.loadNormalizedEntropy,
                      s.routingConfidence, s.auxLoss, s.zLoss};
      assertArrayEquals(ref.metrics, got, 0.0, name + ": load metrics and losses");
      assertTrue(s.structSize >= 160, "struct size " + s.structSize); // sizeof in this header version
      assertTrue(s.latencyLastMs > 0 && s.latencyMeanMs > 0 && s.latencyP50Ms > 0 && s.latencyP95Ms > 0
                 && s.latencyP99Ms > 0 && s.tokensPerSecond > 0 && s.weightBytes > 0, s.toString());
      assertTrue(s.workspaceBytes >= 0);

      // float[] without routing.
      assertArrayEquals(ref.output, m.forward(ref.input, ref.batch, ref.seq), 0.0f, name + ": output (no routing)");

      // Direct buffers, with routing; placed at a non-zero position to exercise slicing.
      int n = ref.input.length;
      int r = ref.ids.length;
      FloatBuffer in = Reference.directFloats(n + 3);
      in.position(3);
      in.put(ref.input);
      in.position(3);
      FloatBuffer out = Reference.directFloats(n);
      IntBuffer ids = Reference.directInts(r);
      FloatBuffer weights = Reference.directFloats(r);
      m.forward(in, ref.batch, ref.seq, out, ids, weights);
      float[] outArray = new float[n];
      out.duplicate().get(outArray);
      int[] idsArray = new int[r];
      ids.duplicate().get(idsArray);
      float[] weightsArray = new float[r];
      weights.duplicate().get(weightsArray);
      assertArrayEquals(ref.output, outArray, 0.0f, name + ": output (direct buffers)");
      assertArrayEquals(ref.ids, idsArray, name + ": ids (direct buffers)");
      assertArrayEquals(ref.weights, weightsArray, 0.0f, name + ": weights (direct buffers)");
      FloatBuffer out2 = Reference.directFloats(n);
      m.forward(in, ref.batch, ref.seq, out2);
      assertEquals(out, out2, name + ": output (direct, no routing)");
      assertEquals(3, in.position(), "the binding must not move the caller's position");

      assertEquals(4, m.stats().forwardCalls);
      m.resetStats();
      assertEquals(0, m.stats().forwardCalls);
      assertArrayEquals(new long[ref.numExperts], m.expertLoads());

      // Tensors: the names listed by the header, the router's shape and values.
      List<String> names = m.tensorNames();
      assertEquals(ref.tensorCount, names.size());
      assertEquals("router.weight", names.get(0));
      assertArrayEquals(new long[] {ref.numExperts, ref.hidden}, m.tensorShape("router.weight"));
      assertArrayEquals(ref.router, m.readTensor("router.weight"), 0.0f, name + ": router.weight");
      for (String t : names) {
        long[] shape = m.tensorShape(t);
        assertTrue(shape.length == 1 || shape.length == 2, t);
      }
      assertEquals("", m.lastError());
    }
  }

  @Test
  void basicCaseMatchesC() throws Exception {
    checkCase("basic", Reference.basicOptions());
  }

  @Test
  void everyOptionAndOverrideMatchesC() throws Exception {
    checkCase("rich", Reference.richOptions());
  }

  @Test
  void compactWeightsMatchC() throws Exception {
    checkCase("compact", Reference.compactOptions());
  }

  @Test
  void loadsTheFileTheCProgramSavedAndSavesItBack(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp)
      throws Exception {
    for (String name : new String[] {"basic", "rich", "compact"}) {
      Reference ref = new Reference(name);
      String cFile = Reference.dir().resolve("case_" + name + ".safetensors").toString();
      String javaFile = tmp.resolve(name + ".safetensors").toString();
      try (Model m = Model.load(cFile, new Options().backend("cpu").threads(1))) {
        assertEquals(ref.topK, m.topK());
        assertArrayEquals(ref.output, m.forwardRouted(ref.input, ref.batch, ref.seq).output, 0.0f, name);
        m.save(javaFile);
      }
      try (Model m = Model.load(javaFile)) {
        assertArrayEquals(ref.output, m.forward(ref.input, ref.batch, ref.seq), 0.0f, name + " (saved by Java)");
      }
    }
  }

  @Test
  void expertSpecsFollowPresetsAndOverrides() {
    try (Model m = Model.create(Reference.richOptions())) {
      ExpertSpec e0 = m.expert(0);
      assertEquals(Activation.GELU, e0.activation);
      assertEquals(64, e0.intermediate);
      assertTrue(e0.preNorm);
      ExpertSpec e1 = m.expert(1);
      assertEquals(Activation.GELU, e1.activation);
      assertEquals(128, e1.intermediate);
      assertFalse(e1.preNorm);
      assertEquals(Activation.SWIGLU, m.expert(2).activation);
      assertEquals(Activation.RELU, m.expert(3).activation);
      assertEquals(Activation.GELU_TANH, m.expert(4).activation);
      assertEquals(40, m.expert(4).intermediate);
      ExpertSpec e5 = m.expert(5);
      assertEquals(Activation.SILU, e5.activation);
      assertFalse(e5.preNorm);
      assertTrue(m.tensorNames().contains("experts.2.gate.weight"));
      assertTrue(m.tensorNames().contains("experts.0.up.bias"));
    }
  }

  @Test
  void optionsByNameEqualTypedOptions() throws Exception {
    Reference ref = new Reference("basic");
    Options byName = new Options().set("hidden", "64").set("num_experts", "8").set("top_k", "2")
        .set("intermediate", "96").set("seed", "7").set("deterministic", "1").set("threads", "2")
        .set("backend", "cpu");
    try (Model m = Model.create(byName)) {
      assertArrayEquals(ref.output, m.forward(ref.input, ref.batch, ref.seq), 0.0f);
    }
  }

  @Test
  void libraryQueries() {
    assertTrue(Pimoe.version().matches("\\d+\\.\\d+\\.\\d+"), Pimoe.version());
    String[] v = Pimoe.version().split("\\.");
    assertEquals(Long.parseLong(v[0]) * 10000 + Long.parseLong(v[1]) * 100 + Long.parseLong(v[2]),
                 Pimoe.versionNumber());
    assertTrue(Pimoe.abiVersion() >= 0);
    assertFalse(Pimoe.buildInfo().isEmpty());
    assertTrue(Pimoe.backends().contains("cpu"), Pimoe.backends().toString());
    assertTrue(Pimoe.backendUsable("cpu"));
    assertTrue(Pimoe.backendDevice("cpu").startsWith("cpu"), Pimoe.backendDevice("cpu"));
    if (!Pimoe.backends().contains("cuda")) {
      assertFalse(Pimoe.backendUsable("cuda"));
      assertEquals(null, Pimoe.backendDevice("cuda"));
    }
    assertFalse(Pimoe.statusString(Status.SIZE_MISMATCH).isEmpty());
    assertEquals(3, Status.SIZE_MISMATCH.code());
    try (Model m = Model.create()) { // all defaults: shape S
      assertEquals(512, m.hidden());
      assertEquals(8, m.numExperts());
      assertEquals(2, m.topK());
      assertEquals(2048, m.expert(0).intermediate);
    }
  }
}
