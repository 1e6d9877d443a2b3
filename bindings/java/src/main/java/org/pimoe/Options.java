// SPDX-License-Identifier: MIT
package org.pimoe;

import java.util.ArrayList;
import java.util.List;

/**
 * Options of a model: a plain Java builder covering every layer-wide option key ({@link OptionKey}) and every
 * per-expert override. The experimental keys ({@code EXPERIMENTAL_*}, which may change or disappear in any release)
 * have no typed setter: use {@link #setInt}, {@link #setFloat}, {@link #setString} or {@link #set(String, String)}. Nothing native is held: the settings are recorded in call order and replayed into a
 * {@code pimoe_options} object by {@link Model#create(Options)}, so a bad value is reported there, as a
 * {@link PimoeException} with the library's status and message (naming the option). An Options object may be reused
 * for several models; it is not thread-safe while being modified.
 *
 * <pre>{@code
 * Options o = new Options().hidden(512).numExperts(8).topK(2).intermediate(2048)
 *     .activation(Activation.SWIGLU).expertPreset(0, ExpertPreset.REASONING);
 * }</pre>
 */
public final class Options {
  /** The expert index meaning "every expert" in the per-expert overrides. */
  public static final int ALL_EXPERTS = -1;

  @FunctionalInterface
  private interface Setter {
    void apply(long handle);
  }

  private final List<Setter> setters = new ArrayList<>();

  public Options() {}

  /** A copy holding the same settings. */
  public Options(Options other) {
    setters.addAll(other.setters);
  }

  // ------------------------------------------------------------------ generic setters
  /** Sets an integer-typed option (the library rejects a key of another type). */
  public Options setInt(OptionKey key, long value) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetInt(h, key.code(), value));
    return this;
  }

  /** Sets a float-typed option. */
  public Options setFloat(OptionKey key, double value) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetFloat(h, key.code(), value));
    return this;
  }

  /** Sets a string-typed option. */
  public Options setString(OptionKey key, String value) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetString(h, key.code(), value));
    return this;
  }

  /** Sets any layer-wide option by its name, the value parsed by the library: {@code set("top_k", "2")}. */
  public Options set(String name, String value) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetByName(h, name, value));
    return this;
  }

  // ------------------------------------------------------------------ typed setters, one per key
  public Options hidden(int hidden) {
    return setInt(OptionKey.HIDDEN, hidden);
  }

  public Options numExperts(int numExperts) {
    return setInt(OptionKey.NUM_EXPERTS, numExperts);
  }

  public Options topK(int topK) {
    return setInt(OptionKey.TOP_K, topK);
  }

  public Options intermediate(long intermediate) {
    return setInt(OptionKey.INTERMEDIATE, intermediate);
  }

  public Options activation(Activation activation) {
    return setInt(OptionKey.ACTIVATION, activation.code());
  }

  public Options preNorm(boolean enabled) {
    return setInt(OptionKey.PRE_NORM, enabled ? 1 : 0);
  }

  public Options expertBias(boolean enabled) {
    return setInt(OptionKey.EXPERT_BIAS, enabled ? 1 : 0);
  }

  public Options temperature(double temperature) {
    return setFloat(OptionKey.TEMPERATURE, temperature);
  }

  public Options renormalize(boolean enabled) {
    return setInt(OptionKey.RENORMALIZE, enabled ? 1 : 0);
  }

  public Options capacityFactor(double capacityFactor) {
    return setFloat(OptionKey.CAPACITY_FACTOR, capacityFactor);
  }

  public Options auxLossCoef(double alpha) {
    return setFloat(OptionKey.AUX_LOSS_COEF, alpha);
  }

  public Options layerNormEps(double eps) {
    return setFloat(OptionKey.LAYER_NORM_EPS, eps);
  }

  public Options seed(long seed) {
    return setInt(OptionKey.SEED, seed);
  }

  /** CPU worker threads of the model; 0 = the machine's cores. */
  public Options threads(int threads) {
    return setInt(OptionKey.THREADS, threads);
  }

  /** "auto", "cpu", "cuda", "vulkan" or "vulkan:N". */
  public Options backend(String backend) {
    return setString(OptionKey.BACKEND, backend);
  }

  public Options deterministic(boolean enabled) {
    return setInt(OptionKey.DETERMINISTIC, enabled ? 1 : 0);
  }

  /** "packed" or "openblas". */
  public Options cpuGemm(String gemm) {
    return setString(OptionKey.CPU_GEMM, gemm);
  }

  // ------------------------------------------------------------------ router extensions, shared expert
  /** "softmax" (default) or "sigmoid" (DeepSeek-V3). */
  public Options routerScoring(String scoring) {
    return setString(OptionKey.ROUTER_SCORING, scoring);
  }

  /** A per-expert selection bias (tensor "router.selection_bias"). */
  public Options routerBias(boolean enabled) {
    return setInt(OptionKey.ROUTER_BIAS, enabled ? 1 : 0);
  }

  public Options routedScaling(double factor) {
    return setFloat(OptionKey.ROUTED_SCALING, factor);
  }

  public Options numGroups(int groups) {
    return setInt(OptionKey.NUM_GROUPS, groups);
  }

  public Options topkGroups(int groups) {
    return setInt(OptionKey.TOPK_GROUPS, groups);
  }

  /** "top2_sum" (default) or "max". */
  public Options groupScore(String score) {
    return setString(OptionKey.GROUP_SCORE, score);
  }

  /** Width of the always-on shared SwiGLU expert (0: none). */
  public Options sharedWidth(long width) {
    return setInt(OptionKey.SHARED_WIDTH, width);
  }

  public Options sharedGate(boolean enabled) {
    return setInt(OptionKey.SHARED_GATE, enabled ? 1 : 0);
  }

  // ------------------------------------------------------------------ weight storage and routing features
  /**
   * Storage of the expert matrices: "auto" (default: fp32 for {@link Model#create}, the file's formats for
   * {@link Model#load}, the checkpoint's for {@link Model#importHf}), "fp32", "bf16", "fp16", "int8", "int4" (see
   * {@link #weightGroupSize} and {@link #weightZeroPoint}), "fp8_e4m3" or "mxfp4". The CPU backend takes every format,
   * in any mix per expert ({@link #expertWeightDtype}); the GPU backends fp32, bf16 or fp16, one per layer.
   */
  public Options weightDtype(String dtype) {
    return setString(OptionKey.WEIGHT_DTYPE, dtype);
  }

  /**
   * What the CPU backend multiplies int8 and int4 expert matrices with: "auto" (default: "int8"), "int8" (inputs
   * quantised to int8 in blocks of 32, integer dot products) or "fp32" (exact arithmetic on the dequantised weights).
   */
  public Options activationDtype(String dtype) {
    return setString(OptionKey.ACTIVATION_DTYPE, dtype);
  }

  /** int4's group: 32 (default), 64 or 128 elements along the input dimension per scale. */
  public Options weightGroupSize(int groupSize) {
    return setInt(OptionKey.WEIGHT_GROUP_SIZE, groupSize);
  }

  /** int4 groups carry a zero point (asymmetric) instead of being symmetric. */
  public Options weightZeroPoint(boolean enabled) {
    return setInt(OptionKey.WEIGHT_ZERO_POINT, enabled ? 1 : 0);
  }

  /** "token_choice" (default) or "expert_choice" (then {@link Model#routingSlots()} is numExperts). */
  public Options routingMode(String mode) {
    return setString(OptionKey.ROUTING_MODE, mode);
  }

  /** Multi-level group-limited routing, "G1:K1,G2:K2,...". */
  public Options groupLevels(String levels) {
    return setString(OptionKey.GROUP_LEVELS, levels);
  }

  /** Heads of the attention router (0: off). */
  public Options attentionHeads(int heads) {
    return setInt(OptionKey.ATTENTION_HEADS, heads);
  }

  /** Head width of the attention router (default 16). */
  public Options attentionHeadDim(int dim) {
    return setInt(OptionKey.ATTENTION_HEAD_DIM, dim);
  }

  /** Causal attention router: token t attends to tokens 0..t of its sequence. */
  public Options attentionCausal(boolean enabled) {
    return setInt(OptionKey.ATTENTION_CAUSAL, enabled ? 1 : 0);
  }

  /** Auxiliary-loss-free balancing rate u (0: off); outputs then depend on earlier calls. */
  public Options adaptiveBiasRate(double rate) {
    return setFloat(OptionKey.ADAPTIVE_BIAS_RATE, rate);
  }

  /** Per-expert capacity re-budgeted from observed demand (needs capacityFactor &gt; 0). */
  public Options dynamicCapacity(boolean enabled) {
    return setInt(OptionKey.DYNAMIC_CAPACITY, enabled ? 1 : 0);
  }

  /** Momentum beta of dynamic capacity, in [0, 1) (default 0.9). */
  public Options capacityMomentum(double beta) {
    return setFloat(OptionKey.CAPACITY_MOMENTUM, beta);
  }

  /** Width d_c of the cross-expert attention combine (0: off). */
  public Options combineAttentionDim(int dim) {
    return setInt(OptionKey.COMBINE_ATTENTION_DIM, dim);
  }

  /** Expert input scaling (Llama 4): y = sum_j expert_j(w_j * x), the routing weight scaling the expert's input. */
  public Options expertInputScaling(boolean enabled) {
    return setInt(OptionKey.EXPERT_INPUT_SCALING, enabled ? 1 : 0);
  }

  /** Sparsemixer routing (Phi-3.5-MoE) with this eps; 0: off. */
  public Options sparsemixerEps(double eps) {
    return setFloat(OptionKey.SPARSEMIXER_EPS, eps);
  }

  /** The router's logit bias (gpt-oss): z = W_g x + c, tensor "router.bias". */
  public Options routerLogitBias(boolean enabled) {
    return setInt(OptionKey.ROUTER_LOGIT_BIAS, enabled ? 1 : 0);
  }

  /** Alpha of SWIGLU_OAI experts (default 1.702). */
  public Options swigluAlpha(double alpha) {
    return setFloat(OptionKey.SWIGLU_ALPHA, alpha);
  }

  /** Limit of SWIGLU_OAI experts (default 7.0). */
  public Options swigluLimit(double limit) {
    return setFloat(OptionKey.SWIGLU_LIMIT, limit);
  }

  // ------------------------------------------------------------------ per-expert overrides
  /** A preset for one expert, or for every expert with {@link #ALL_EXPERTS}. */
  public Options expertPreset(int expert, ExpertPreset preset) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetExpertPreset(h, expert, preset.code()));
    return this;
  }

  public Options expertActivation(int expert, Activation activation) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetExpertActivation(h, expert, activation.code()));
    return this;
  }

  /** The absolute intermediate size of one expert. */
  public Options expertWidth(int expert, long intermediate) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetExpertWidth(h, expert, intermediate));
    return this;
  }

  public Options expertPreNorm(int expert, boolean enabled) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetExpertPreNorm(h, expert, enabled ? 1 : 0));
    return this;
  }

  /**
   * The storage format of one expert's matrices, overriding {@link #weightDtype} (e.g. a hot expert kept at "bf16"
   * in an "int4" layer): any weightDtype value but "auto"; int4 takes the layer's group size and zero point.
   */
  public Options expertWeightDtype(int expert, String dtype) {
    setters.add(h -> pimoeJNI.pimoeOptionsSetExpertWeightDtype(h, expert, dtype));
    return this;
  }

  // ------------------------------------------------------------------ native
  /** A new native pimoe_options holding these settings; the caller destroys it. */
  long toNative() {
    long[] out = new long[1];
    pimoeJNI.pimoeOptionsCreate(out);
    try {
      for (Setter s : setters) {
        s.apply(out[0]);
      }
    } catch (RuntimeException e) {
      pimoeJNI.pimoeOptionsDestroy(out[0]);
      throw e;
    }
    return out[0];
  }
}
