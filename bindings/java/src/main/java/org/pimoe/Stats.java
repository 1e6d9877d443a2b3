// SPDX-License-Identifier: MIT
package org.pimoe;

/**
 * A snapshot of a model's statistics ({@code pimoe_stats_snapshot}): every field of the C struct, as an immutable
 * value. See the C header for the definitions of the load-balance metrics and losses.
 */
public final class Stats {
  /** Size of the C struct that was filled (the library's {@code sizeof(pimoe_stats_snapshot)}). */
  public final long structSize;
  public final int numExperts;
  public final long forwardCalls;
  public final long tokens;
  /** (token, slot) assignments dropped by the capacity limit. */
  public final long droppedTokens;
  public final double latencyLastMs;
  public final double latencyMeanMs;
  public final double latencyP50Ms;
  public final double latencyP95Ms;
  public final double latencyP99Ms;
  public final double tokensPerSecond;
  public final long weightBytes;
  public final long workspaceBytes;
  public final double expertUtilization;
  public final double loadCv;
  public final double loadMaxViolation;
  public final double loadJainIndex;
  public final double loadNormalizedEntropy;
  public final double routingConfidence;
  public final double auxLoss;
  public final double zLoss;
  /**
   * Relative RMS quantisation error of the expert matrices against the fp32 weights they were quantised from,
   * sqrt(sum (w - deq(q(w)))^2 / sum w^2): NaN when they came already quantised (a compact file, an FP8/MXFP4
   * checkpoint), 0 for fp32 layers.
   */
  public final double weightQuantRelRmsError;
  /** Largest absolute quantisation error of an expert matrix element; NaN when unknown. */
  public final double weightQuantMaxAbsError;

  Stats(StatsSnapshotNative s) {
    structSize = s.getStructSize();
    numExperts = (int) s.getNumExperts();
    forwardCalls = s.getForwardCalls();
    tokens = s.getTokens();
    droppedTokens = s.getDroppedTokens();
    latencyLastMs = s.getLatencyLastMs();
    latencyMeanMs = s.getLatencyMeanMs();
    latencyP50Ms = s.getLatencyP50Ms();
    latencyP95Ms = s.getLatencyP95Ms();
    latencyP99Ms = s.getLatencyP99Ms();
    tokensPerSecond = s.getTokensPerSecond();
    weightBytes = s.getWeightBytes();
    workspaceBytes = s.getWorkspaceBytes();
    expertUtilization = s.getExpertUtilization();
    loadCv = s.getLoadCv();
    loadMaxViolation = s.getLoadMaxViolation();
    loadJainIndex = s.getLoadJainIndex();
    loadNormalizedEntropy = s.getLoadNormalizedEntropy();
    routingConfidence = s.getRoutingConfidence();
    auxLoss = s.getAuxLoss();
    zLoss = s.getZLoss();
    weightQuantRelRmsError = s.getWeightQuantRelRmsError();
    weightQuantMaxAbsError = s.getWeightQuantMaxAbsError();
  }

  @Override
  public String toString() {
    return String.format(java.util.Locale.ROOT,
        "Stats{calls=%d, tokens=%d, dropped=%d, latency last/mean/p50/p95/p99 = %.4f/%.4f/%.4f/%.4f/%.4f ms, "
            + "tokens/s=%.1f, weightBytes=%d, workspaceBytes=%d, utilization=%.3f, cv=%.4f, maxViolation=%.4f, "
            + "jain=%.4f, entropy=%.4f, confidence=%.4f, auxLoss=%.6f, zLoss=%.6f, quantRelRms=%.4g, quantMaxAbs=%.4g}",
        forwardCalls, tokens, droppedTokens, latencyLastMs, latencyMeanMs, latencyP50Ms, latencyP95Ms, latencyP99Ms,
        tokensPerSecond, weightBytes, workspaceBytes, expertUtilization, loadCv, loadMaxViolation, loadJainIndex,
        loadNormalizedEntropy, routingConfidence, auxLoss, zLoss, weightQuantRelRmsError, weightQuantMaxAbsError);
  }
}
