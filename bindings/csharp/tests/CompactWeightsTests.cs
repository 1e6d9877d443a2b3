// SPDX-License-Identifier: MIT
// Compact weights: SetWeightDtype's formats, SetWeightGroupSize, SetWeightZeroPoint and SetExpertWeightDtype, bit for
// bit against the C library (records "compact:*" written by bindings/reference/reference.c, put_compact).
using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class CompactWeightsTests
    {
        // reference.c's routing_base() (RoutingTests.RoutingBase).
        static Options Base()
        {
            return new Options().Set(OptionKey.Hidden, H).Set(OptionKey.NumExperts, E).Set(OptionKey.TopK, K)
                .Set(OptionKey.Intermediate, I).Set(OptionKey.Seed, 99).Set(OptionKey.Threads, 1)
                .Set(OptionKey.Backend, "cpu");
        }

        // reference.c's add_compact_weights(): int4 in groups of 64 with zero points, expert 0 at bf16, expert 3 at
        // int8.
        static Options Compact()
        {
            return Base().SetWeightDtype("int4").SetWeightGroupSize(64).SetWeightZeroPoint(true)
                .SetExpertWeightDtype(0, "bf16").SetExpertWeightDtype(3, "int8");
        }

        static void AssertFinite(float[] y, string what)
        {
            for (int i = 0; i < y.Length; i++)
                Assert.IsFalse(float.IsNaN(y[i]) || float.IsInfinity(y[i]), what + ": output[" + i + "] = " + y[i]);
        }

        [Test]
        public void Int4LayerWithABf16ExpertMatchesTheCLibrary()
        {
            var exp = Expected();
            using (var o = Compact())
            using (var m = new Model(o))
            {
                var output = new float[T * H];
                var ids = new int[T * K];
                var w = new float[T * K];
                m.Forward(Input(0, T), output, Batch, Seq, ids, w);
                AssertFinite(output, "compact");
                Assert.IsTrue(BitwiseEqual(Floats(exp["compact:output"]), output), "compact:output");
                Assert.AreEqual(exp["compact:ids"].Select(L).ToArray(), ids.Select(x => (long)x).ToArray());
                Assert.IsTrue(BitwiseEqual(Floats(exp["compact:weights"]), w), "compact:weights");
                foreach (string t in new[] { "experts.0.up.weight", "experts.1.up.weight" })
                    Assert.IsTrue(BitwiseEqual(Floats(exp["compact:tensor:" + t]), m.ReadTensor(t)), "values of " + t);

                // Weight memory: the C library's figure, well below the fp32 layer's.
                ulong bytes = m.GetStats().WeightBytes;
                Assert.AreEqual(L(exp["compact:weight_bytes"][0]), (long)bytes);
                using (var fo = Base())
                using (var fp32 = new Model(fo))
                {
                    ulong fp32Bytes = fp32.GetStats().WeightBytes;
                    Assert.AreEqual(L(exp["compact:fp32_weight_bytes"][0]), (long)fp32Bytes);
                    Assert.Less(3 * bytes, fp32Bytes, "compact weights take under a third of the fp32 layer's");
                    var y32 = new float[T * H];
                    fp32.Forward(Input(0, T), y32, Batch, Seq);
                    Assert.IsFalse(BitwiseEqual(y32, output), "the int4 layer computes as the fp32 one");
                }

                // Expert 0 holds bf16 values; expert 1 int4 ones (at most 16 per group: one row of [I, H]).
                foreach (float v in m.ReadTensor("experts.0.up.weight"))
                    Assert.AreEqual(0, BitConverter.ToInt32(BitConverter.GetBytes(v), 0) & 0xffff, v + " is no bf16");
                float[] e1 = m.ReadTensor("experts.1.up.weight");
                for (int row = 0; row < I; row++)
                    Assert.LessOrEqual(new HashSet<float>(e1.Skip(row * H).Take(H)).Count, 16, "row " + row);
            }
        }

        [Test]
        public void EveryStorageFormatIsAcceptedLayerWideAndPerExpert()
        {
            foreach (string dtype in new[] { "auto", "fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4" })
            {
                using (var o = Base().SetWeightDtype(dtype))
                {
                    if (dtype != "auto") o.SetExpertWeightDtype(Options.AllExperts, dtype).SetExpertWeightDtype(2, "fp32");
                    using (var m = new Model(o))
                    {
                        var y = new float[T * H];
                        m.Forward(Input(1, T), y, Batch, Seq);
                        AssertFinite(y, dtype);
                    }
                }
            }
        }

        [Test]
        public void BadFormatsThrowTheLibrarysStatusAndMessage()
        {
            using (var o = Base())
            {
                var e = Assert.Throws<PimoeException>(() => o.SetExpertWeightDtype(0, "int3"));
                Assert.AreEqual(Status.InvalidOption, e.Status);
                Assert.AreEqual("pimoe_options_set_expert_weight_dtype: weight_dtype 'int3' is not a storage format " +
                                "(fp32, bf16, fp16, int8, int4, fp8_e4m3, mxfp4)", e.Message);
                e = Assert.Throws<PimoeException>(() => o.SetExpertWeightDtype(0, "auto"));
                Assert.AreEqual(Status.InvalidOption, e.Status);
                StringAssert.Contains("'auto' is not a storage format", e.Message);
                e = Assert.Throws<PimoeException>(() => o.SetExpertWeightDtype(0, null));
                Assert.AreEqual(Status.NullPointer, e.Status);
                StringAssert.Contains("weight_dtype is NULL", e.Message);
                e = Assert.Throws<PimoeException>(() => o.SetExpertWeightDtype(-2, "bf16"));
                Assert.AreEqual(Status.InvalidArgument, e.Status);
                StringAssert.Contains("-2", e.Message);
                e = Assert.Throws<PimoeException>(() => o.SetWeightDtype("int3"));
                Assert.AreEqual(Status.InvalidOption, e.Status);
                StringAssert.Contains("weight_dtype", e.Message);
                e = Assert.Throws<PimoeException>(() => o.SetWeightGroupSize(256));
                Assert.AreEqual(Status.InvalidOption, e.Status);
                StringAssert.Contains("weight_group_size", e.Message);
                e = Assert.Throws<PimoeException>(() => o.Set("weight_zero_point", "2"));
                Assert.AreEqual(Status.InvalidOption, e.Status);
                StringAssert.Contains("weight_zero_point", e.Message);
                // 48 is in the setter's range but no group size: the model creation says so.
                o.SetWeightGroupSize(48);
                e = Assert.Throws<PimoeException>(() => new Model(o).Dispose());
                Assert.AreEqual(Status.InvalidOption, e.Status);
                Assert.AreEqual("weight_group_size (48) must be 32, 64 or 128", e.Message);
                // The options stay usable after the failures.
                o.SetWeightGroupSize(128).SetWeightDtype("int4");
                using (var m = new Model(o)) Assert.AreEqual(H, m.Hidden);
            }
        }
    }
}
