// SPDX-License-Identifier: MIT
using System;

namespace Pimoe
{
    /// <summary>
    /// The full routing of one forward call (pimoe_routing), filled by <see cref="Model.ForwardRouting(float[],
    /// float[], long, long, Routing)"/>. With T = batch*seq tokens and S = <see cref="Model.RoutingSlots"/> (TopK, or
    /// NumExperts with expert-choice routing), for token t and slot j (index t*S + j): <see cref="ExpertIds"/> the
    /// expert (-1 for an unused expert-choice slot), <see cref="Weights"/> the weight its output was combined with (0
    /// when dropped or unused; the attention combine's w' when on), <see cref="Dropped"/> 1 when the capacity limit
    /// dropped it. <see cref="Probabilities"/> holds T*NumExperts router scores (before any bias or group mask). Any
    /// array may be null: that output is not wanted. The arrays are pinned and written in place (no copy).
    /// </summary>
    public sealed class Routing
    {
        /// <summary>Caller-allocated outputs (any may be null); ids, weights and dropped must have one length.</summary>
        public Routing(int[] expertIds, float[] weights, byte[] dropped, float[] probabilities)
        {
            ExpertIds = expertIds;
            Weights = weights;
            Dropped = dropped;
            Probabilities = probabilities;
        }

        /// <summary>All four outputs for <paramref name="tokens"/> tokens.</summary>
        public static Routing Allocate(long tokens, int slots, int numExperts)
        {
            long r = tokens * slots, p = tokens * numExperts;
            return new Routing(new int[r], new float[r], new byte[r], new float[p]);
        }

        /// <summary>[T*S] the expert of each slot (-1: an unused expert-choice slot), or null.</summary>
        public int[] ExpertIds { get; private set; }
        /// <summary>[T*S] the weight each slot's output was combined with, or null.</summary>
        public float[] Weights { get; private set; }
        /// <summary>[T*S] 1 when the capacity limit dropped the slot, else 0; or null.</summary>
        public byte[] Dropped { get; private set; }
        /// <summary>[T*NumExperts] the router scores of every token and expert, or null.</summary>
        public float[] Probabilities { get; private set; }

        /// <summary>Whether slot <paramref name="index"/> (t*S + j) was dropped by the capacity limit.</summary>
        public bool IsDropped(int index) { return Dropped[index] != 0; }
    }
}
