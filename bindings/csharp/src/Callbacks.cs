// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Pimoe
{
    /// <summary>
    /// Computes a callback expert (pimoe_expert_fn): the <paramref name="rows"/> tokens routed to
    /// <paramref name="expert"/> arrive in <paramref name="input"/> [rows, hidden] (their x, in token order, no
    /// LayerNorm); write the expert's outputs into <paramref name="output"/> [rows, hidden] (zero-filled). Throw to
    /// fail the forward call: it then throws a <see cref="PimoeException"/> with <see cref="Status.Callback"/> whose
    /// InnerException is the exception thrown here.
    /// <para>Thread contract: the callback runs on the thread that called Forward/ForwardRouting, inside that call,
    /// at most once per call and callback expert, after routing. Concurrent forward calls on one Model may run it
    /// concurrently, so it must be thread-safe. It must not call members of the same Model. The arrays are copies
    /// made for this call (the input from, the output back to, the library's buffers).</para>
    /// </summary>
    public delegate void ExpertFunction(int expert, float[] input, float[] output, int rows, int hidden);

    /// <summary>The native side of callback experts: delegates marshalled to pimoe_expert_fn pointers.</summary>
    internal static class Callbacks
    {
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int NativeExpertFn(IntPtr userData, int expert, IntPtr input, long rows, long hidden,
                                             IntPtr output);

        // The first failure of the forward call running on this thread (the callback runs on the caller's thread).
        [ThreadStatic] private static Exception pending;

        /// <summary>A native-callable wrapper of fn; the caller keeps it alive as long as a model may call it.</summary>
        internal static NativeExpertFn Wrap(ExpertFunction fn)
        {
            return (IntPtr userData, int expert, IntPtr input, long rows, long hidden, IntPtr output) =>
            {
                try
                {
                    long count = rows * hidden;
                    if (count < 0 || count > int.MaxValue) throw new OverflowException("expert input too large");
                    int n = (int)count;
                    var x = new float[n];
                    var y = new float[n];
                    if (n > 0) Marshal.Copy(input, x, 0, n);
                    fn(expert, x, y, (int)rows, (int)hidden);
                    if (n > 0) Marshal.Copy(y, 0, output, n);
                    return 0;
                }
                catch (Exception e) // an exception must not cross the native frames
                {
                    if (pending == null) pending = e;
                    return 1;
                }
            };
        }

        /// <summary>Clears this thread's pending callback failure (before a forward call).</summary>
        internal static void Begin() { pending = null; }

        /// <summary>The exception to throw for a failed forward call: e with the callback's exception as its inner
        /// exception when a callback of this thread's call failed, else e itself.</summary>
        internal static PimoeException Attach(PimoeException e)
        {
            Exception inner = pending;
            pending = null;
            if (inner == null || e.Status != Status.Callback) return e;
            return new PimoeException(e.Status, e.Message, inner);
        }
    }
}
