// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using NUnit.Framework;
using Pimoe;

namespace PimoeTests
{
    internal static class TestUtil
    {
        // The fixed model of bindings/reference/reference.c (write_text_records); keep the two in step.
        public const int H = 64, E = 8, K = 2, I = 96, Batch = 2, Seq = 5, T = Batch * Seq;

        public static Options MakeOptions()
        {
            return new Options()
                .Set(OptionKey.Hidden, H)
                .Set(OptionKey.NumExperts, E)
                .Set(OptionKey.TopK, K)
                .Set(OptionKey.Intermediate, I)
                .Set(OptionKey.Activation, ActivationFunction.Silu)
                .Set(OptionKey.ExpertBias, true)
                .Set(OptionKey.Temperature, 0.9)
                .Set(OptionKey.Renormalize, false)
                .Set(OptionKey.CapacityFactor, 1.0)
                .Set(OptionKey.AuxLossCoef, 0.01)
                .Set(OptionKey.LayerNormEps, 1e-6)
                .Set(OptionKey.Seed, 1234)
                .Set(OptionKey.Threads, 2)
                .Set(OptionKey.Backend, "cpu")
                .Set(OptionKey.Deterministic, true)
                .Set(OptionKey.CpuGemm, "packed")
                .Set("pre_norm", "1")
                .SetExpertPreset(1, ExpertPreset.Language)
                .SetExpertPreset(2, ExpertPreset.Computation)
                .SetExpertActivation(3, ActivationFunction.GeluTanh)
                .SetExpertWidth(4, 40)
                .SetExpertPreNorm(5, false);
        }

        public static Model MakeModel()
        {
            using (var o = MakeOptions()) return new Model(o);
        }

        public static float[] FixedInput()
        {
            var x = new float[T * H];
            for (int i = 0; i < x.Length; i++) x[i] = (float)((i * 37) % 101 - 50) / 32.0f;
            return x;
        }

        public static float[] Input(int seed, int tokens)
        {
            var x = new float[tokens * H];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(((i + 13 * seed) * 29) % 97 - 48) / 40.0f;
            return x;
        }

        public static bool BitwiseEqual(float[] a, float[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
                if (BitConverter.ToInt32(BitConverter.GetBytes(a[i]), 0) !=
                    BitConverter.ToInt32(BitConverter.GetBytes(b[i]), 0)) return false;
            return true;
        }

        /// <summary>The records written by bindings/reference/reference.c: name -> tokens after the count.</summary>
        public static Dictionary<string, string[]> Expected()
        {
            string path = Environment.GetEnvironmentVariable("PIMOE_CSHARP_EXPECTED");
            Assert.IsNotNull(path, "PIMOE_CSHARP_EXPECTED is not set (run the tests through ctest)");
            var d = new Dictionary<string, string[]>();
            foreach (string line in File.ReadAllLines(path))
            {
                string[] parts = line.Split(' ');
                int n = int.Parse(parts[1], CultureInfo.InvariantCulture);
                string[] values = new string[parts.Length - 2];
                Array.Copy(parts, 2, values, 0, values.Length);
                if (parts[0] != "build_info" && parts[0] != "callback_failure_message") Assert.AreEqual(n, values.Length, "record " + parts[0]);
                d[parts[0]] = values;
            }
            return d;
        }

        public static float[] Floats(string[] v)
        {
            var f = new float[v.Length];
            for (int i = 0; i < v.Length; i++) f[i] = float.Parse(v[i], CultureInfo.InvariantCulture);
            return f;
        }

        public static double D(string s) { return double.Parse(s, CultureInfo.InvariantCulture); }
        public static long L(string s) { return long.Parse(s, CultureInfo.InvariantCulture); }
    }
}
