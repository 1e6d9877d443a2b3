// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;

namespace Pimoe
{
    /// <summary>The resolved spec of one expert (after presets and overrides).</summary>
    public struct ExpertInfo
    {
        /// <summary>An expert's spec: its activation, width and whether it normalises its input.</summary>
        public ExpertInfo(ActivationFunction activation, long intermediate, bool preNorm) : this()
        {
            Activation = activation;
            Intermediate = intermediate;
            PreNorm = preNorm;
        }

        /// <summary>The expert's activation function.</summary>
        public ActivationFunction Activation { get; private set; }
        /// <summary>The expert's intermediate width (0 for a callback expert).</summary>
        public long Intermediate { get; private set; }
        /// <summary>Whether the expert applies LayerNorm to its input (false for a callback expert).</summary>
        public bool PreNorm { get; private set; }

        /// <summary>"activation xwidth", with " (pre-LayerNorm)" when it has one.</summary>
        public override string ToString()
        {
            return Activation + " x" + Intermediate + (PreNorm ? " (pre-LayerNorm)" : "");
        }
    }

    /// <summary>
    /// A Mixture-of-Experts layer (pimoe_model). Thread-safe: any number of threads or tasks may call Forward and the
    /// read-only members at once. Dispose() frees it once every call in flight has returned; calling Dispose() twice
    /// is harmless; any call after Dispose() throws ObjectDisposedException. Failures throw PimoeException.
    /// Buffers are never copied: managed arrays are pinned for the duration of the native call and their address is
    /// handed to libpimoe.
    /// </summary>
    public sealed class Model : IDisposable
    {
        private readonly ModelHandle handle;
        private readonly long hidden;
        private readonly int numExperts;
        private readonly int topK;
        private readonly int slots;
        // Expert-callback delegates this model may call: kept alive as long as the model.
        private readonly List<Callbacks.NativeExpertFn> callbacks = new List<Callbacks.NativeExpertFn>();

        /// <summary>A model with every default option (pimoe.h), weights initialised from seed 0.</summary>
        public Model() : this((Options)null) { }

        /// <summary>A model built from <paramref name="options"/> (null: every default). The options may be
        /// disposed or changed right after.</summary>
        public Model(Options options)
        {
            pimoePINVOKE.EnsureInitialized();
            if (options == null)
            {
                using (var defaults = new Options()) pimoe.PimoeCreate(defaults.Handle, out handle);
            }
            else
            {
                pimoe.PimoeCreate(options.Handle, out handle);
                callbacks.AddRange(options.CallbackDelegates);
            }
            pimoe.PimoeModelDims(handle, out hidden, out numExperts, out topK);
            slots = (int)pimoe.PimoeModelRoutingSlots(handle);
        }

        internal ModelHandle Handle { get { return handle; } }

        private Model(ModelHandle loaded)
        {
            handle = loaded;
            pimoe.PimoeModelDims(handle, out hidden, out numExperts, out topK);
            slots = (int)pimoe.PimoeModelRoutingSlots(handle);
        }

        private delegate void Opener(OptionsHandle options, out ModelHandle model);

        // The one place that turns a fresh native handle into a Model: default options when none are given, and the
        // handle disposed if wrapping it fails.
        private static Model Open(Options options, Opener opener)
        {
            pimoePINVOKE.EnsureInitialized();
            ModelHandle opened;
            if (options == null)
            {
                using (var defaults = new Options()) opener(defaults.Handle, out opened);
            }
            else
            {
                opener(options.Handle, out opened);
            }
            try
            {
                var model = new Model(opened);
                if (options != null) model.callbacks.AddRange(options.CallbackDelegates);
                return model;
            }
            catch
            {
                opened.Dispose();
                throw;
            }
        }

        /// <summary>
        /// Loads a model saved by <see cref="Save(string)"/> (libpimoe's native safetensors format). The layer comes
        /// from the file; only the runtime settings (backend, threads, deterministic, cpu_gemm) come from
        /// <paramref name="options"/> (null: defaults). Failures: PimoeException with Status IO, Format or
        /// Unsupported, the message naming the file.
        /// </summary>
        public static Model Load(string path, Options options = null)
        {
            return Open(options, (OptionsHandle o, out ModelHandle h) => pimoe.PimoeLoad(path, o, out h));
        }

        /// <summary>
        /// Imports the MoE block of decoder layer <paramref name="layer"/> of a Hugging Face checkpoint folder
        /// (config.json and model.safetensors or a sharded index; pimoe_import_hf in pimoe.h lists the families). Only
        /// the runtime settings of <paramref name="options"/> are used.
        /// </summary>
        public static Model ImportHf(string checkpointDir, int layer, Options options = null)
        {
            return Open(options, (OptionsHandle o, out ModelHandle h) =>
                pimoe.PimoeImportHf(checkpointDir, layer, o, out h));
        }

        /// <summary>Saves the model to <paramref name="path"/> in libpimoe's native format (replacing a file).</summary>
        public void Save(string path) { pimoe.PimoeSave(Live(), path); }

        /// <summary>The model width H.</summary>
        public long Hidden { get { return hidden; } }

        /// <summary>The number of routed experts E.</summary>
        public int NumExperts { get { return numExperts; } }

        /// <summary>Experts per token k.</summary>
        public int TopK { get { return topK; } }

        /// <summary>Routing slots per token in the routing outputs (pimoe_model_routing_slots): TopK, or NumExperts
        /// with expert-choice routing.</summary>
        public int RoutingSlots { get { return slots; } }

        /// <summary>The backend this model runs on ("cpu", ...).</summary>
        public string Backend { get { return pimoe.PimoeModelBackend(Live()); } }

        /// <summary>The last failure recorded on this model from any thread, or "".</summary>
        public string LastError { get { return pimoe.PimoeModelLastError(Live()); } }

        /// <summary>Whether Dispose() has been called.</summary>
        public bool IsDisposed { get { return handle.IsClosed; } }

        /// <summary>The resolved spec of expert <paramref name="expert"/> in [0, NumExperts).</summary>
        public ExpertInfo GetExpert(int expert)
        {
            ActivationFunction activation;
            long intermediate;
            int preNorm;
            pimoe.PimoeModelExpert(Live(), expert, out activation, out intermediate, out preNorm);
            return new ExpertInfo(activation, intermediate, preNorm != 0);
        }

        /// <summary>
        /// Runs the layer on <paramref name="input"/> [batch, seq, Hidden] into <paramref name="output"/> of the same
        /// shape. Both arrays are pinned, not copied.
        /// </summary>
        public unsafe void Forward(float[] input, float[] output, long batch, long seq)
        {
            ModelHandle h = Live();
            fixed (float* pin = input)
            fixed (float* pout = output)
            {
                Callbacks.Begin();
                try
                {
                    pimoe.PimoeForward(h, (IntPtr)pin, Count(input), batch, seq, (IntPtr)pout, Count(output),
                                       IntPtr.Zero, IntPtr.Zero, 0);
                }
                catch (PimoeException e)
                {
                    PimoeException w = Callbacks.Attach(e);
                    if (w == e) throw;
                    throw w;
                }
                finally
                {
                    GC.KeepAlive(callbacks); // the delegates the library may be calling
                }
            }
        }

        /// <summary>
        /// As <see cref="Forward(float[], float[], long, long)"/>, also receiving the routing: for token t and slot j
        /// (index t*S + j, S = RoutingSlots, slots by descending router probability) the chosen expert (-1 for an
        /// unused expert-choice slot) and its combine weight (0 for a slot dropped by the capacity limit). Both
        /// routing arrays hold batch*seq*RoutingSlots elements.
        /// </summary>
        public unsafe void Forward(float[] input, float[] output, long batch, long seq, int[] expertIds,
                                   float[] expertWeights)
        {
            ModelHandle h = Live();
            ulong routing = expertIds != null ? (ulong)expertIds.LongLength
                                              : expertWeights != null ? (ulong)expertWeights.LongLength : 0;
            if (expertIds != null && expertWeights != null && expertIds.LongLength != expertWeights.LongLength)
                throw new ArgumentException("expertIds and expertWeights must have the same length");
            fixed (float* pin = input)
            fixed (float* pout = output)
            fixed (int* pids = expertIds)
            fixed (float* pw = expertWeights)
            {
                // An empty routing array pins as null: pass a non-null pointer so that the library reports the
                // count mismatch, not a missing buffer.
                IntPtr ids = expertIds != null && pids == null ? (IntPtr)(&routing) : (IntPtr)pids;
                IntPtr weights = expertWeights != null && pw == null ? (IntPtr)(&routing) : (IntPtr)pw;
                Callbacks.Begin();
                try
                {
                    pimoe.PimoeForward(h, (IntPtr)pin, Count(input), batch, seq, (IntPtr)pout, Count(output), ids,
                                       weights, routing);
                }
                catch (PimoeException e)
                {
                    PimoeException w = Callbacks.Attach(e);
                    if (w == e) throw;
                    throw w;
                }
                finally
                {
                    GC.KeepAlive(callbacks); // the delegates the library may be calling
                }
            }
        }

        /// <summary>
        /// Runs the layer into <paramref name="output"/> and fills <paramref name="routing"/> with the full routing
        /// (pimoe_forward_routing): each non-null array is pinned and written in place (no copy). The non-null ones of
        /// ExpertIds, Weights and Dropped must have the same length, batch*seq*RoutingSlots; Probabilities holds
        /// batch*seq*NumExperts. routing may be null (no routing output).
        /// </summary>
        public unsafe void ForwardRouting(float[] input, float[] output, long batch, long seq, Routing routing)
        {
            ModelHandle h = Live();
            int[] ids = routing == null ? null : routing.ExpertIds;
            float[] weights = routing == null ? null : routing.Weights;
            byte[] dropped = routing == null ? null : routing.Dropped;
            float[] probs = routing == null ? null : routing.Probabilities;
            long n = ids != null ? ids.LongLength : weights != null ? weights.LongLength
                   : dropped != null ? dropped.LongLength : 0;
            if ((ids != null && ids.LongLength != n) || (weights != null && weights.LongLength != n)
                || (dropped != null && dropped.LongLength != n))
                throw new ArgumentException("Routing.ExpertIds, Weights and Dropped must have the same length");
            ulong dummy = 0;
            fixed (float* pin = input)
            fixed (float* pout = output)
            fixed (int* pids = ids)
            fixed (float* pw = weights)
            fixed (byte* pd = dropped)
            fixed (float* pp = probs)
            {
                // An empty array pins as null: pass a non-null pointer so that the library reports the count.
                IntPtr aids = ids != null && pids == null ? (IntPtr)(&dummy) : (IntPtr)pids;
                IntPtr aw = weights != null && pw == null ? (IntPtr)(&dummy) : (IntPtr)pw;
                IntPtr ad = dropped != null && pd == null ? (IntPtr)(&dummy) : (IntPtr)pd;
                IntPtr ap = probs != null && pp == null ? (IntPtr)(&dummy) : (IntPtr)pp;
                Callbacks.Begin();
                try
                {
                    pimoe.PimoeCsharpForwardRouting(h, (IntPtr)pin, Count(input), batch, seq, (IntPtr)pout,
                                                    Count(output), aids, aw, ad, (ulong)n, ap, Count(probs));
                }
                catch (PimoeException e)
                {
                    PimoeException w = Callbacks.Attach(e);
                    if (w == e) throw;
                    throw w;
                }
                finally
                {
                    GC.KeepAlive(callbacks); // the delegates the library may be calling
                }
            }
        }

        /// <summary>ForwardRouting into <paramref name="output"/>, returning all four routing outputs.</summary>
        public Routing ForwardRouting(float[] input, float[] output, long batch, long seq)
        {
            Routing r = Routing.Allocate(batch > 0 && seq > 0 ? batch * seq : 0, slots, numExperts);
            ForwardRouting(input, output, batch, seq, r);
            return r;
        }

        /// <summary>Restores the adaptive routing state (adaptive bias, dynamic-capacity load average) to its value at
        /// creation or load (pimoe_model_reset_adaptive_state); a no-op without them. Safe while forwards
        /// run.</summary>
        public void ResetAdaptiveState() { pimoe.PimoeModelResetAdaptiveState(Live()); }

        /// <summary>
        /// Sets or replaces the function of callback expert <paramref name="expert"/>
        /// (pimoe_model_set_expert_callback), e.g. after Load: a loaded model's callback experts fail forward calls
        /// with Status.Callback until it is set. Must not race with forward calls on this model.
        /// </summary>
        public void SetExpertCallback(int expert, ExpertFunction fn)
        {
            if (fn == null) throw new ArgumentNullException("fn");
            Callbacks.NativeExpertFn native = Callbacks.Wrap(fn);
            lock (callbacks)
            {
                pimoe.PimoeModelSetExpertCallback(Live(), expert,
                    System.Runtime.InteropServices.Marshal.GetFunctionPointerForDelegate(native), IntPtr.Zero);
                callbacks.Add(native); // the replaced delegate stays alive too: a racing call could still hold it
            }
        }

        /// <summary>Runs the layer on input.Length / Hidden tokens (batch 1), into a new output array.</summary>
        public float[] Forward(float[] input)
        {
            if (input == null) throw new ArgumentNullException("input");
            var output = new float[input.Length];
            Forward(input, output, 1, input.Length / Math.Max(hidden, 1));
            return output;
        }

        /// <summary>A snapshot of the statistics since creation or the last ResetStats().</summary>
        public Stats GetStats()
        {
            Stats s = Stats.Empty();
            pimoe.PimoeStats(Live(), ref s);
            return s;
        }

        /// <summary>Per-expert loads: computed (token, expert) assignments per expert, summed over calls.</summary>
        public ulong[] GetExpertLoads()
        {
            var counts = new ulong[numExperts];
            GetExpertLoads(counts);
            return counts;
        }

        /// <summary>Per-expert loads into <paramref name="counts"/> (at least NumExperts elements).</summary>
        public unsafe void GetExpertLoads(ulong[] counts)
        {
            ModelHandle h = Live();
            fixed (ulong* p = counts)
            {
                ulong n = counts == null ? 0UL : (ulong)counts.LongLength;
                ulong dummy = 0;
                pimoe.PimoeStatsExpertLoads(h, counts != null && p == null ? (IntPtr)(&dummy) : (IntPtr)p, n);
            }
        }

        /// <summary>Clears every statistic (safe while forwards run).</summary>
        public void ResetStats() { pimoe.PimoeStatsReset(Live()); }

        /// <summary>Names of the model's weight tensors, in the order of pimoe.h.</summary>
        public string[] TensorNames
        {
            get
            {
                ModelHandle h = Live();
                long n = pimoe.PimoeTensorCount(h);
                var names = new List<string>((int)Math.Max(n, 0));
                for (long i = 0; i < n; i++) names.Add(pimoe.PimoeTensorName(h, i));
                return names.ToArray();
            }
        }

        /// <summary>The shape of a named tensor (rank 1 or 2).</summary>
        public unsafe long[] GetTensorShape(string name)
        {
            ModelHandle h = Live();
            int ndim;
            long* dims = stackalloc long[4];
            pimoe.PimoeTensorShape(h, name, out ndim, (IntPtr)dims);
            var shape = new long[ndim];
            for (int i = 0; i < ndim; i++) shape[i] = dims[i];
            return shape;
        }

        /// <summary>A copy of a named tensor's values (row-major fp32).</summary>
        public float[] ReadTensor(string name)
        {
            long count = 1;
            foreach (long d in GetTensorShape(name)) count *= d;
            var values = new float[count];
            ReadTensor(name, values);
            return values;
        }

        /// <summary>Copies a named tensor's values into <paramref name="values"/>, whose length must equal the
        /// tensor's element count.</summary>
        public unsafe void ReadTensor(string name, float[] values)
        {
            ModelHandle h = Live();
            fixed (float* p = values)
            {
                float dummy = 0;
                ulong n = values == null ? 0UL : (ulong)values.LongLength;
                pimoe.PimoeTensorRead(h, name, values != null && p == null ? (IntPtr)(&dummy) : (IntPtr)p, n);
            }
        }

        /// <summary>Frees the model once every call in flight has returned. Calling it twice is harmless.</summary>
        public void Dispose() { handle.Dispose(); }

        private ModelHandle Live()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Pimoe.Model");
            return handle;
        }

        private static ulong Count(Array a) { return a == null ? 0UL : (ulong)a.LongLength; }
    }
}
