// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Pimoe
{
    /// <summary>
    /// A snapshot of a model's statistics (pimoe_stats_snapshot, field for field, same layout). A plain value type:
    /// copying it copies the numbers. See pimoe.h for the exact definition of every metric.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stats
    {
        private uint structSize;
        private uint numExperts;
        private ulong forwardCalls;
        private ulong tokens;
        private ulong droppedTokens;
        private double latencyLastMs;
        private double latencyMeanMs;
        private double latencyP50Ms;
        private double latencyP95Ms;
        private double latencyP99Ms;
        private double tokensPerSecond;
        private ulong weightBytes;
        private ulong workspaceBytes;
        private double expertUtilization;
        private double loadCv;
        private double loadMaxViolation;
        private double loadJainIndex;
        private double loadNormalizedEntropy;
        private double routingConfidence;
        private double auxLoss;
        private double zLoss;
        private double weightQuantRelRmsError;
        private double weightQuantMaxAbsError;

        /// <summary>The size in bytes of this struct as given to the library (the snapshot's version).</summary>
        public uint StructSize { get { return structSize; } }
        /// <summary>E, the model's routed experts.</summary>
        public uint NumExperts { get { return numExperts; } }
        /// <summary>Forward calls that succeeded.</summary>
        public ulong ForwardCalls { get { return forwardCalls; } }
        /// <summary>Tokens of those calls (batch*seq, summed).</summary>
        public ulong Tokens { get { return tokens; } }
        /// <summary>(token, slot) assignments dropped by the capacity limit.</summary>
        public ulong DroppedTokens { get { return droppedTokens; } }
        /// <summary>Wall time of the last call, in milliseconds.</summary>
        public double LatencyLastMs { get { return latencyLastMs; } }
        /// <summary>Mean wall time of a call, in milliseconds.</summary>
        public double LatencyMeanMs { get { return latencyMeanMs; } }
        /// <summary>Median wall time of the most recent 1024 calls, in milliseconds.</summary>
        public double LatencyP50Ms { get { return latencyP50Ms; } }
        /// <summary>95th percentile of the same.</summary>
        public double LatencyP95Ms { get { return latencyP95Ms; } }
        /// <summary>99th percentile of the same.</summary>
        public double LatencyP99Ms { get { return latencyP99Ms; } }
        /// <summary>Tokens / (sum of the calls' wall times), in tokens per second.</summary>
        public double TokensPerSecond { get { return tokensPerSecond; } }
        /// <summary>Bytes held by the weights, in the backend's layout.</summary>
        public ulong WeightBytes { get { return weightBytes; } }
        /// <summary>Scratch memory currently held for reuse by forward calls, in bytes.</summary>
        public ulong WorkspaceBytes { get { return workspaceBytes; } }
        /// <summary>Fraction of experts that were given at least one (token, slot) assignment.</summary>
        public double ExpertUtilization { get { return expertUtilization; } }
        /// <summary>Coefficient of variation of the experts' loads.</summary>
        public double LoadCv { get { return loadCv; } }
        /// <summary>(largest load - mean load) / mean load.</summary>
        public double LoadMaxViolation { get { return loadMaxViolation; } }
        /// <summary>Jain's fairness index of the loads, in [1/E, 1].</summary>
        public double LoadJainIndex { get { return loadJainIndex; } }
        /// <summary>Entropy of the load distribution divided by log E.</summary>
        public double LoadNormalizedEntropy { get { return loadNormalizedEntropy; } }
        /// <summary>Mean over tokens of the top-1 router probability.</summary>
        public double RoutingConfidence { get { return routingConfidence; } }
        /// <summary>Load-balancing loss of the last call.</summary>
        public double AuxLoss { get { return auxLoss; } }
        /// <summary>Router z-loss of the last call.</summary>
        public double ZLoss { get { return zLoss; } }
        /// <summary>Relative RMS quantisation error of the expert matrices against the fp32 weights they were
        /// quantised from: sqrt(sum (w - deq(q(w)))^2 / sum w^2). NaN when they came already quantised (a compact
        /// file, an FP8/MXFP4 checkpoint); 0 for fp32 layers.</summary>
        public double WeightQuantRelRmsError { get { return weightQuantRelRmsError; } }
        /// <summary>Largest absolute quantisation error of an expert matrix element; NaN when unknown.</summary>
        public double WeightQuantMaxAbsError { get { return weightQuantMaxAbsError; } }

        internal static Stats Empty()
        {
            Stats s = default(Stats);
            s.structSize = (uint)Marshal.SizeOf(typeof(Stats));
            return s;
        }

        /// <summary>The main numbers on one line, e.g. "Stats(calls=3, tokens=96, ...)".</summary>
        public override string ToString()
        {
            return string.Format(System.Globalization.CultureInfo.InvariantCulture,
                "Stats(calls={0}, tokens={1}, dropped={2}, mean={3:F3} ms, p50={4:F3} ms, tokens/s={5:F0}, " +
                "utilization={6:F3}, cv={7:F3}, jain={8:F3}, aux_loss={9:F4}, z_loss={10:F4})",
                forwardCalls, tokens, droppedTokens, latencyMeanMs, latencyP50Ms, tokensPerSecond,
                expertUtilization, loadCv, loadJainIndex, auxLoss, zLoss);
        }
    }
}
