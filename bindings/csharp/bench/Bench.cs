// SPDX-License-Identifier: MIT
// Overhead of one C# Model.Forward call over the C call pimoe_forward, at 1 token.
// Both are timed in the same process on the same model handle and the same buffers, in alternating rounds
// (C, C#, C, C#, ...); the report gives the medians of the per-round means and of the per-round differences.
// Shapes: S (hidden 512, 8 experts, top-2, intermediate 2048, GELU FFN), and a tiny model (hidden 8) whose forward
// is so cheap that the difference isolates the binding's fixed cost from the noise of a real forward.
// Usage: mono PimoeBench.exe [--quick]
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Pimoe;

internal static class Bench
{
    [DllImport("libpimoe_csharp_bench_native")]
    private static extern unsafe double pimoe_csharp_bench_c_forward(IntPtr model, float* input, float* output,
                                                                     long tokens, long hidden, int iters);

    private static double Median(List<double> v)
    {
        v.Sort();
        int n = v.Count;
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }

    private static unsafe void Run(string name, Options options, int rounds, int iters)
    {
        using (options)
        using (var model = new Model(options))
        {
            long h = model.Hidden;
            var input = new float[h];
            var output = new float[h];
            for (int i = 0; i < h; i++) input[i] = (float)Math.Sin(0.37 * i);
            IntPtr raw = model.Handle.DangerousGetHandle();
            var cTimes = new List<double>();
            var csTimes = new List<double>();
            var diffs = new List<double>();
            fixed (float* pin = input)
            fixed (float* pout = output)
            {
                // Warm-up: JIT, the model's scratch memory, caches.
                for (int i = 0; i < Math.Max(iters / 4, 2); i++) model.Forward(input, output, 1, 1);
                double warm = pimoe_csharp_bench_c_forward(raw, pin, pout, 1, h, Math.Max(iters / 4, 2));
                if (warm < 0) throw new Exception("C forward failed: status " + (-warm));
                var sw = new Stopwatch();
                for (int r = 0; r < rounds; r++)
                {
                    double c = pimoe_csharp_bench_c_forward(raw, pin, pout, 1, h, iters);
                    sw.Restart();
                    for (int i = 0; i < iters; i++) model.Forward(input, output, 1, 1);
                    sw.Stop();
                    double cs = sw.Elapsed.TotalMilliseconds * 1e6 / iters;
                    cTimes.Add(c);
                    csTimes.Add(cs);
                    diffs.Add(cs - c);
                }
            }
            Console.WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture,
                "{0,-44} C: {1,10:F2} us   C#: {2,10:F2} us   overhead (median of per-round C# - C): {3,7:F3} us" +
                "   [{4} rounds x {5} calls]",
                name, Median(cTimes) / 1e3, Median(csTimes) / 1e3, Median(diffs) / 1e3, rounds, iters));
        }
    }

    private static int Main(string[] args)
    {
        bool quick = Array.IndexOf(args, "--quick") >= 0;
        Console.WriteLine("libpimoe " + Library.Version + " | " + Library.BuildInfo);
        Console.WriteLine("runtime: " + Environment.Version + (Type.GetType("Mono.Runtime") != null ? " (Mono)" : "")
                          + ", " + Environment.ProcessorCount + " cores");
        Run("tiny (H=8, E=2, k=1, I=8), 1 token",
            new Options().Set(OptionKey.Hidden, 8).Set(OptionKey.NumExperts, 2).Set(OptionKey.TopK, 1)
                         .Set(OptionKey.Intermediate, 8).Set(OptionKey.Threads, 1).Set(OptionKey.Backend, "cpu"),
            quick ? 2 : 21, quick ? 100 : 20000);
        Run("S (H=512, E=8, k=2, I=2048, GELU), 1 token",
            new Options().Set(OptionKey.Hidden, 512).Set(OptionKey.NumExperts, 8).Set(OptionKey.TopK, 2)
                         .Set(OptionKey.Intermediate, 2048).Set(OptionKey.Backend, "cpu"),
            quick ? 2 : 21, quick ? 5 : 400);
        return 0;
    }
}
