// SPDX-License-Identifier: MIT
using System;

namespace Pimoe
{
    /// <summary>
    /// Layer options (pimoe_options): every key of <see cref="OptionKey"/>, settable typed or by name, plus per-expert
    /// overrides. Each setter is checked by the library at once and throws <see cref="PimoeException"/> naming the key.
    /// Setters return this object, so they chain. An Options object is not thread-safe: build it on one thread, then
    /// pass it to <see cref="M:Pimoe.Model.#ctor(Pimoe.Options)"/>, which copies what it needs. Dispose it when done
    /// (a finalizer frees it otherwise).
    /// </summary>
    public sealed class Options : IDisposable
    {
        /// <summary>The expert index that addresses every expert in the per-expert setters.</summary>
        public const int AllExperts = -1;

        private readonly OptionsHandle handle;

        /// <summary>Options holding every default listed in pimoe.h.</summary>
        public Options()
        {
            pimoePINVOKE.EnsureInitialized();
            pimoe.PimoeOptionsCreate(out handle);
        }

        internal OptionsHandle Handle { get { return handle; } }

        /// <summary>Sets an integer option (hidden, num_experts, top_k, intermediate, activation, pre_norm,
        /// expert_bias, renormalize, seed, threads, deterministic).</summary>
        public Options Set(OptionKey key, long value)
        {
            pimoe.PimoeOptionsSetInt(handle, key, value);
            return this;
        }

        /// <summary>Sets a 0/1 option (pre_norm, expert_bias, renormalize, deterministic).</summary>
        public Options Set(OptionKey key, bool value) { return Set(key, value ? 1L : 0L); }

        /// <summary>Sets an integer option from an enum value, e.g. (OptionKey.Activation, ActivationFunction.Silu).
        /// (Typed as System.Enum so that a literal 0 still picks the integer overload.)</summary>
        public Options Set(OptionKey key, Enum value)
        {
            if (value == null) throw new ArgumentNullException("value");
            return Set(key, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        }

        /// <summary>Sets a float option (temperature, capacity_factor, aux_loss_coef, layer_norm_eps).</summary>
        public Options Set(OptionKey key, double value)
        {
            pimoe.PimoeOptionsSetFloat(handle, key, value);
            return this;
        }

        /// <summary>Sets a string option (backend, cpu_gemm).</summary>
        public Options Set(OptionKey key, string value)
        {
            pimoe.PimoeOptionsSetString(handle, key, value);
            return this;
        }

        /// <summary>Sets any layer-wide option by its name, the value parsed as the key's type, e.g.
        /// ("top_k", "2"), ("activation", "swiglu"), ("temperature", "0.7").</summary>
        public Options Set(string name, string value)
        {
            pimoe.PimoeOptionsSetByName(handle, name, value);
            return this;
        }

        /// <summary>Applies a preset to one expert, or to every expert with <see cref="AllExperts"/>.</summary>
        public Options SetExpertPreset(int expert, ExpertPreset preset)
        {
            pimoe.PimoeOptionsSetExpertPreset(handle, expert, preset);
            return this;
        }

        /// <summary>Sets one expert's activation, or every expert's with <see cref="AllExperts"/>.</summary>
        public Options SetExpertActivation(int expert, ActivationFunction activation)
        {
            pimoe.PimoeOptionsSetExpertActivation(handle, expert, activation);
            return this;
        }

        /// <summary>Sets an expert's absolute intermediate size.</summary>
        public Options SetExpertWidth(int expert, long intermediate)
        {
            pimoe.PimoeOptionsSetExpertWidth(handle, expert, intermediate);
            return this;
        }

        /// <summary>Gives one expert (or every expert) a LayerNorm on its input, or takes it away.</summary>
        public Options SetExpertPreNorm(int expert, bool enabled)
        {
            pimoe.PimoeOptionsSetExpertPreNorm(handle, expert, enabled ? 1 : 0);
            return this;
        }

        /// <summary>The storage format of one expert's matrices (or every expert's, with <see cref="AllExperts"/>),
        /// overriding <see cref="SetWeightDtype"/>, e.g. a hot expert kept at "bf16" in an "int4" layer: any weight
        /// dtype but "auto"; int4 takes the layer's group size and zero point.</summary>
        public Options SetExpertWeightDtype(int expert, string dtype)
        {
            pimoe.PimoeOptionsSetExpertWeightDtype(handle, expert, dtype);
            return this;
        }

        // ------------------------------------------------------------ typed setters of the weight storage
        /// <summary>Storage of the expert matrices: "auto" (default: fp32 for a created model, the file's formats
        /// for Model.Load, the checkpoint's for Model.ImportHf), "fp32", "bf16", "fp16", "int8", "int4" (see
        /// <see cref="SetWeightGroupSize"/>, <see cref="SetWeightZeroPoint"/>), "fp8_e4m3" or "mxfp4". The CPU
        /// backend takes every format, in any mix per expert (<see cref="SetExpertWeightDtype"/>); the GPU backends
        /// fp32, bf16 or fp16, one per layer.</summary>
        public Options SetWeightDtype(string dtype) { return Set(OptionKey.WeightDtype, dtype); }
        /// <summary>What the CPU backend multiplies int8 and int4 expert matrices with: "auto" (default: "int8"),
        /// "int8" (inputs quantised to int8 in blocks of 32, integer dot products) or "fp32" (exact arithmetic on
        /// the dequantised weights).</summary>
        public Options SetActivationDtype(string dtype) { return Set(OptionKey.ActivationDtype, dtype); }

        /// <summary>int4's group: 32 (default), 64 or 128 elements along the input dimension per scale (the
        /// setter takes 32 to 128; the model creation checks it is one of the three).</summary>
        public Options SetWeightGroupSize(int groupSize) { return Set(OptionKey.WeightGroupSize, (long)groupSize); }

        /// <summary>int4 groups carry a zero point (asymmetric) instead of being symmetric.</summary>
        public Options SetWeightZeroPoint(bool enabled) { return Set(OptionKey.WeightZeroPoint, enabled); }

        // ------------------------------------------------------------ typed setters of the routing features

        /// <summary>"token_choice" (default) or "expert_choice" (then Model.RoutingSlots is NumExperts).</summary>
        public Options SetRoutingMode(string mode) { return Set(OptionKey.RoutingMode, mode); }

        /// <summary>Multi-level group-limited routing, "G1:K1,G2:K2,...".</summary>
        public Options SetGroupLevels(string levels) { return Set(OptionKey.GroupLevels, levels); }

        /// <summary>Heads of the attention router (0: off).</summary>
        public Options SetAttentionHeads(int heads) { return Set(OptionKey.AttentionHeads, (long)heads); }

        /// <summary>Head width of the attention router (default 16).</summary>
        public Options SetAttentionHeadDim(int dim) { return Set(OptionKey.AttentionHeadDim, (long)dim); }

        /// <summary>Causal attention router: token t attends to tokens 0..t of its sequence.</summary>
        public Options SetAttentionCausal(bool enabled) { return Set(OptionKey.AttentionCausal, enabled); }

        /// <summary>Auxiliary-loss-free balancing rate u (0: off); outputs then depend on earlier calls.</summary>
        public Options SetAdaptiveBiasRate(double rate) { return Set(OptionKey.AdaptiveBiasRate, rate); }

        /// <summary>Per-expert capacity re-budgeted from observed demand (needs capacity_factor &gt; 0).</summary>
        public Options SetDynamicCapacity(bool enabled) { return Set(OptionKey.DynamicCapacity, enabled); }

        /// <summary>Momentum beta of dynamic capacity, in [0, 1) (default 0.9).</summary>
        public Options SetCapacityMomentum(double beta) { return Set(OptionKey.CapacityMomentum, beta); }

        /// <summary>Width d_c of the cross-expert attention combine (0: off).</summary>
        public Options SetCombineAttentionDim(int dim) { return Set(OptionKey.CombineAttentionDim, (long)dim); }

        /// <summary>Expert input scaling (Llama 4): y = sum_j expert_j(w_j * x).</summary>
        public Options SetExpertInputScaling(bool enabled) { return Set(OptionKey.ExpertInputScaling, enabled); }

        /// <summary>Sparsemixer routing (Phi-3.5-MoE) with this eps; 0: off.</summary>
        public Options SetSparsemixerEps(double eps) { return Set(OptionKey.SparsemixerEps, eps); }

        /// <summary>The router's logit bias (gpt-oss): z = W_g x + c, tensor "router.bias".</summary>
        public Options SetRouterLogitBias(bool enabled) { return Set(OptionKey.RouterLogitBias, enabled); }

        /// <summary>Alpha of SwiGluOai experts (default 1.702).</summary>
        public Options SetSwigluAlpha(double alpha) { return Set(OptionKey.SwigluAlpha, alpha); }

        /// <summary>Limit of SwiGluOai experts (default 7.0).</summary>
        public Options SetSwigluLimit(double limit) { return Set(OptionKey.SwigluLimit, limit); }

        // ------------------------------------------------------------ callback experts
        // Every delegate handed to the library, kept alive here and by every Model created from these options.
        private readonly System.Collections.Generic.List<Callbacks.NativeExpertFn> callbacks =
            new System.Collections.Generic.List<Callbacks.NativeExpertFn>();

        internal Callbacks.NativeExpertFn[] CallbackDelegates { get { return callbacks.ToArray(); } }

        /// <summary>Makes <paramref name="expert"/> (in [0, NumExperts)) a callback expert computed by
        /// <paramref name="fn"/> (pimoe_options_set_expert_callback); see <see cref="ExpertFunction"/> for the
        /// contract.</summary>
        public Options SetExpertCallback(int expert, ExpertFunction fn)
        {
            if (fn == null) throw new ArgumentNullException("fn");
            Callbacks.NativeExpertFn native = Callbacks.Wrap(fn);
            pimoe.PimoeOptionsSetExpertCallback(handle, expert,
                System.Runtime.InteropServices.Marshal.GetFunctionPointerForDelegate(native), IntPtr.Zero);
            callbacks.Add(native);
            return this;
        }

        /// <summary>Frees the native options. Calling it twice is harmless; using the object afterwards throws
        /// ObjectDisposedException.</summary>
        public void Dispose() { handle.Dispose(); }
    }
}
