// SPDX-License-Identifier: MIT
// libpimoe from C#: build a small Mixture-of-Experts layer, run a batch through it, read the routing and statistics.
// Build: mcs -r:Pimoe.dll Example.cs    Run: LD_LIBRARY_PATH=<dir of libpimoe_csharp.so> mono Example.exe
using System;
using Pimoe;

internal static class Example
{
    private static int Main()
    {
        Console.WriteLine("libpimoe " + Library.Version + " (" + Library.BuildInfo + ")");
        Console.WriteLine("backends: " + string.Join(", ", Library.Backends) + "; cpu device: " +
                          Library.BackendDevice("cpu"));

        using (var options = new Options()
                   .Set(OptionKey.Hidden, 128)
                   .Set(OptionKey.NumExperts, 4)
                   .Set(OptionKey.TopK, 2)
                   .Set(OptionKey.Intermediate, 256)
                   .Set("activation", "swiglu")
                   .Set(OptionKey.Backend, "cpu")
                   .SetExpertPreset(3, ExpertPreset.Computation))
        using (var model = new Model(options))
        {
            const int batch = 2, seq = 8;
            var input = new float[batch * seq * model.Hidden];
            for (int i = 0; i < input.Length; i++) input[i] = (float)Math.Sin(0.01 * i);
            var output = new float[input.Length];
            var ids = new int[batch * seq * model.TopK];
            var weights = new float[ids.Length];

            model.Forward(input, output, batch, seq, ids, weights);
            Console.WriteLine("model: backend " + model.Backend + ", expert 3: " + model.GetExpert(3));
            Console.WriteLine(string.Format("token 0 -> experts {0} ({1:F3}) and {2} ({3:F3}); output[0] = {4:F5}",
                                            ids[0], weights[0], ids[1], weights[1], output[0]));
            Stats stats = model.GetStats();
            Console.WriteLine(stats);
            Console.WriteLine("expert loads: " + string.Join(" ", model.GetExpertLoads()));

            try
            {
                model.Forward(input, new float[3], batch, seq);
            }
            catch (PimoeException e)
            {
                Console.WriteLine("expected failure: " + e.Status + ": " + e.Message);
            }
        }
        Console.WriteLine("ok");
        return 0;
    }
}
