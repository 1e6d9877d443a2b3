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
        public uint NumExperts { get { return numExperts; } }
        public ulong ForwardCalls { get { return forwardCalls; } }
        public ulong Tokens { get { return tokens; } }
        /// <summary>(token, slot) assignments dropped by the capacity limit.</summary>
        public ulong DroppedTokens { get { return droppedTokens; } }
        public double LatencyLastMs { get { return latencyLastMs; } }
        public double LatencyMeanMs { get { return latencyMeanMs; } }
        public double LatencyP50Ms { get { return latencyP50Ms; } }
        public double LatencyP95Ms { get { return latencyP95Ms; } }
        public double LatencyP99Ms { get { return latencyP99Ms; } }
        public double TokensPerSecond { get { return tokensPerSecond; } }
        public ulong WeightBytes { get { return weightBytes; } }
        public ulong WorkspaceBytes { get { return workspaceBytes; } }
        public double ExpertUtilization { get { return expertUtilization; } }
        public double LoadCv { get { return loadCv; } }
        public double LoadMaxViolation { get { return loadMaxViolation; } }
        public double LoadJainIndex { get { return loadJainIndex; } }
        public double LoadNormalizedEntropy { get { return loadNormalizedEntropy; } }
        public double RoutingConfidence { get { return routingConfidence; } }
        public double AuxLoss { get { return auxLoss; } }
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
