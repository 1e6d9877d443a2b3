using System;

namespace Pimoe
{
    /// <summary>
    /// Layer options (pimoe_options): every key of <see cref="OptionKey"/>, settable typed or by name, plus per-expert
    /// overrides. Each setter is checked by the library at once and throws <see cref="PimoeException"/> naming the key.
    /// Setters return this object, so they chain. An Options object is not thread-safe: build it on one thread, then
    /// pass it to <see cref="Model(Options)"/>, which copies what it needs. Dispose it when done (a finalizer frees it
    /// otherwise).
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

        public Options SetExpertPreNorm(int expert, bool enabled)
        {
            pimoe.PimoeOptionsSetExpertPreNorm(handle, expert, enabled ? 1 : 0);
            return this;
        }

        /// <summary>Frees the native options. Calling it twice is harmless; using the object afterwards throws
        /// ObjectDisposedException.</summary>
        public void Dispose() { handle.Dispose(); }
    }
}
