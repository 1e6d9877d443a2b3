// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.file.Files;
import org.junit.jupiter.api.Test;

/**
 * forwardRouting (pimoe_forward_routing), the routing-feature options and resetAdaptiveState, against the C
 * library's own results (routing_*.bin, written by reference.c), bit for bit.
 */
class RoutingTest {
  /** One call of a routing_<name>.bin file. */
  static final class Call {
    float[] input, output, weights, probs;
    int[] ids;
    byte[] dropped;
  }

  static final class Case {
    long batch, seq, hidden;
    int slots, experts;
    Call[] calls;

    Case(String name) throws Exception {
      ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(Reference.dir().resolve("routing_" + name + ".bin")))
          .order(ByteOrder.nativeOrder());
      batch = b.getLong();
      seq = b.getLong();
      hidden = b.getLong();
      slots = (int) b.getLong();
      experts = (int) b.getLong();
      calls = new Call[(int) b.getLong()];
      int n = (int) (batch * seq * hidden);
      int r = (int) (batch * seq * slots);
      int p = (int) (batch * seq * experts);
      for (int c = 0; c < calls.length; ++c) {
        Call call = new Call();
        call.input = floats(b, n);
        call.output = floats(b, n);
        call.ids = new int[r];
        for (int i = 0; i < r; ++i) {
          call.ids[i] = b.getInt();
        }
        call.weights = floats(b, r);
        call.dropped = new byte[r];
        b.get(call.dropped);
        call.probs = floats(b, p);
        calls[c] = call;
      }
      assertTrue(!b.hasRemaining(), "trailing bytes in routing_" + name + ".bin");
    }

    private static float[] floats(ByteBuffer b, int n) {
      float[] out = new float[n];
      for (int i = 0; i < n; ++i) {
        out[i] = b.getFloat();
      }
      return out;
    }
  }

  static Options features() {
    return Reference.basicOptions().deterministic(false).threads(1).weightDtype("bf16").attentionHeads(2)
        .attentionHeadDim(8).attentionCausal(true).combineAttentionDim(16).groupLevels("2:1,2:2")
        .adaptiveBiasRate(0.01).capacityFactor(1.0).dynamicCapacity(true).capacityMomentum(0.8)
        .routingMode("token_choice");
  }

  static Options routerExtensions() {
    return Reference.basicOptions().routerScoring("sigmoid").routerBias(true).routedScaling(2.5).numGroups(4)
        .topkGroups(2).groupScore("max").sharedWidth(32).sharedGate(true).weightDtype("fp16");
  }

  static Options expertChoice() {
    return Reference.basicOptions().routingMode("expert_choice").capacityFactor(1.5);
  }

  private static void check(String name, Options options) throws Exception {
    Case ref = new Case(name);
    try (Model m = Model.create(options)) {
      assertEquals(ref.slots, m.routingSlots(), name + ": routing slots");
      for (int c = 0; c < ref.calls.length; ++c) {
        Call want = ref.calls[c];
        if (c == ref.calls.length - 1) {
          m.resetAdaptiveState(); // the last recorded call is call 0 again, after a reset
        }
        String what = name + " call " + c;
        float[] out = new float[want.input.length];
        Routing r;
        if (c % 2 == 0) { // arrays
          r = m.forwardRouting(want.input, ref.batch, ref.seq, out);
        } else { // direct buffers
          int n = want.input.length;
          FloatBuffer in = Reference.directFloats(n);
          in.put(want.input).flip();
          FloatBuffer o = Reference.directFloats(n);
          IntBuffer ids = Reference.directInts(want.ids.length);
          FloatBuffer w = Reference.directFloats(want.weights.length);
          ByteBuffer d = ByteBuffer.allocateDirect(want.dropped.length);
          FloatBuffer p = Reference.directFloats(want.probs.length);
          m.forwardRouting(in, ref.batch, ref.seq, o, ids, w, d, p);
          r = Routing.allocate(ref.batch * ref.seq, ref.slots, ref.experts);
          o.get(out);
          ids.get(r.expertIds);
          w.get(r.weights);
          d.get(r.dropped);
          p.get(r.probabilities);
        }
        assertArrayEquals(want.output, out, 0.0f, what + ": output");
        assertArrayEquals(want.ids, r.expertIds, what + ": expert ids");
        assertArrayEquals(want.weights, r.weights, 0.0f, what + ": weights");
        assertArrayEquals(want.dropped, r.dropped, what + ": dropped");
        assertArrayEquals(want.probs, r.probabilities, 0.0f, what + ": probabilities");
      }
    }
  }

  @Test
  void basicMatchesC() throws Exception {
    check("basic", Reference.basicOptions());
  }

  @Test
  void routingFeaturesAndAdaptiveResetMatchC() throws Exception {
    check("features", features());
  }

  @Test
  void routerExtensionsAndSharedExpertMatchC() throws Exception {
    check("router_extensions", routerExtensions());
  }

  @Test
  void expertChoiceHasNumExpertsSlotsAndMatchesC() throws Exception {
    Case ref = new Case("expert_choice");
    assertEquals(ref.experts, ref.slots);
    boolean unused = false;
    for (int id : ref.calls[0].ids) {
      unused |= id == -1;
    }
    assertTrue(unused, "expert choice leaves some slots unused (-1)");
    check("expert_choice", expertChoice());
    // forward()'s routing outputs have the same slots.
    try (Model m = Model.create(expertChoice())) {
      Model.Routed routed = m.forwardRouted(ref.calls[0].input, ref.batch, ref.seq);
      assertArrayEquals(ref.calls[0].ids, routed.expertIds);
      assertArrayEquals(ref.calls[0].weights, routed.expertWeights, 0.0f);
    }
  }

  @Test
  void partialOutputsAndArgumentChecks() throws Exception {
    Case ref = new Case("basic");
    Call want = ref.calls[0];
    try (Model m = Model.create(Reference.basicOptions())) {
      float[] probs = new float[want.probs.length];
      float[] out = new float[want.input.length];
      m.forwardRouting(want.input, ref.batch, ref.seq, out, new Routing(null, null, null, probs));
      assertArrayEquals(want.probs, probs, 0.0f);
      assertArrayEquals(want.output, out, 0.0f);
      m.forwardRouting(want.input, ref.batch, ref.seq, out, null);
      PimoeException e = assertThrows(PimoeException.class, () -> m.forwardRouting(want.input, ref.batch, ref.seq,
          out, new Routing(new int[4], new float[5], null, null)));
      assertEquals(Status.SIZE_MISMATCH, e.status());
      e = assertThrows(PimoeException.class, () -> m.forwardRouting(want.input, ref.batch, ref.seq, out,
          new Routing(new int[5], new float[5], new byte[5], null)));
      assertEquals(Status.SIZE_MISMATCH, e.status()); // from the library: 5 != T*S
      assertTrue(e.getMessage().contains("slot_count"), e.getMessage());
      e = assertThrows(PimoeException.class, () -> m.forwardRouting(want.input, ref.batch, ref.seq, out,
          new Routing(null, null, null, new float[3])));
      assertEquals(Status.SIZE_MISMATCH, e.status());
    }
  }

  @Test
  void callbackStatusIsKnown() {
    assertEquals(14, Status.CALLBACK.code());
    assertEquals(Status.CALLBACK, new PimoeException(14, "x").status());
    assertNull(new PimoeException(15, "x").status());
    assertTrue(!Pimoe.statusString(Status.CALLBACK).isEmpty());
  }
}
