// SPDX-License-Identifier: MIT
package pimoe

// Stats is a snapshot of a model's statistics: every field of pimoe_stats_snapshot, in its order and layout (the
// library fills it in place; see pimoe.h for the exact definitions). Loads count (token, expert) assignments
// computed; the losses are those of the last call; latency is wall time inside the library's forward, its
// percentiles over the most recent 1024 calls.
type Stats struct {
	StructSize            uint32  // bytes of this struct the library filled (set by Model.Stats)
	NumExperts            uint32  // E
	ForwardCalls          uint64  // forward calls since creation or the last ResetStats
	Tokens                uint64  // tokens processed
	DroppedTokens         uint64  // (token, slot) assignments dropped by the capacity limit
	LatencyLastMs         float64 // latency of the last call, milliseconds
	LatencyMeanMs         float64 // mean latency
	LatencyP50Ms          float64 // median latency
	LatencyP95Ms          float64 // 95th percentile latency
	LatencyP99Ms          float64 // 99th percentile latency
	TokensPerSecond       float64 // tokens / sum of latencies
	WeightBytes           uint64  // memory held by weights, in the backend's layout
	WorkspaceBytes        uint64  // scratch memory held for reuse by forward calls
	ExpertUtilization     float64 // fraction of experts with a non-zero load
	LoadCV                float64 // coefficient of variation of the loads
	LoadMaxViolation      float64 // (max load - mean) / mean
	LoadJainIndex         float64 // Jain's fairness index of the loads, in [1/E, 1]
	LoadNormalizedEntropy float64 // entropy of the load distribution / log E
	RoutingConfidence     float64 // mean top-1 router probability
	AuxLoss               float64 // load-balancing auxiliary loss of the last call
	ZLoss                 float64 // router z-loss of the last call
	// Quantisation error of the expert matrices against the fp32 weights they were quantised from (NaN when they
	// came already quantised: a compact file, an FP8/MXFP4 checkpoint; 0 for fp32 layers).
	WeightQuantRelRMSError float64 // sqrt(sum (w - deq(q(w)))^2 / sum w^2)
	WeightQuantMaxAbsError float64 // max |w - deq(q(w))|
}
