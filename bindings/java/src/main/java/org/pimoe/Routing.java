// SPDX-License-Identifier: MIT
package org.pimoe;

/**
 * The full routing of one forward call ({@code pimoe_routing}), filled by {@link Model#forwardRouting}. With
 * T = batch*seq tokens and S = {@link Model#routingSlots()} slots per token (topK, or numExperts with expert-choice
 * routing), for token t and slot j (index t*S + j):
 * <ul>
 *   <li>{@link #expertIds}: the expert, or -1 for an unused expert-choice slot;
 *   <li>{@link #weights}: the weight its output was combined with (0 when dropped or unused; the attention
 *       combine's w' when that is on);
 *   <li>{@link #dropped}: 1 when the capacity limit dropped the assignment, else 0;
 * </ul>
 * and {@link #probabilities} holds T*numExperts router scores (softmax p or sigmoid s of every token and expert,
 * before any bias or group mask). Any array may be null: that output is not wanted. The arrays are pinned and
 * written in place by the library (no copy).
 */
public final class Routing {
  /** Expert of token t, slot j at index t*S + j (-1: unused slot); null if not wanted. */
  public final int[] expertIds;
  /** Combine weight of token t, slot j; null if not wanted. */
  public final float[] weights;
  /** 1 where the capacity limit dropped token t, slot j; null if not wanted. */
  public final byte[] dropped;
  /** Router probability of token t and expert e at index t*numExperts + e; null if not wanted. */
  public final float[] probabilities;

  /** Caller-allocated routing outputs (any may be null); ids, weights and dropped must have the same length. */
  public Routing(int[] expertIds, float[] weights, byte[] dropped, float[] probabilities) {
    this.expertIds = expertIds;
    this.weights = weights;
    this.dropped = dropped;
    this.probabilities = probabilities;
  }

  /** All four outputs, sized for {@code tokens} tokens of a model with the given slots and experts. */
  public static Routing allocate(long tokens, long slots, long numExperts) {
    if (tokens < 0 || slots < 0 || numExperts < 0 || tokens * Math.max(slots, numExperts) > Integer.MAX_VALUE - 8) {
      throw new PimoeException(Status.INVALID_ARGUMENT, "Routing.allocate: " + tokens + " tokens x "
          + Math.max(slots, numExperts) + " do not fit a Java array");
    }
    int r = (int) (tokens * slots);
    int p = (int) (tokens * numExperts);
    return new Routing(new int[r], new float[r], new byte[r], new float[p]);
  }

  /** Whether token t, slot j (index t*S + j) was dropped by the capacity limit. */
  public boolean isDropped(int index) {
    return dropped[index] != 0;
  }
}
