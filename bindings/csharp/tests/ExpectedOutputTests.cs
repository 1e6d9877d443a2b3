// SPDX-License-Identifier: MIT
// Real numbers: the binding's results on the fixed model and input must equal, bit for bit, what the C library
// itself produced for them (bindings/reference/reference.c, run by ctest as the fixture bindings_reference).
using System.Runtime.InteropServices;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class ExpectedOutputTests
    {
        [Test]
        public void ForwardMatchesTheCLibrary()
        {
            var exp = Expected();
            using (var model = MakeModel())
            {
                Assert.AreEqual(H, model.Hidden);
                Assert.AreEqual(E, model.NumExperts);
                Assert.AreEqual(K, model.TopK);
                var input = FixedInput();
                var output = new float[T * H];
                var ids = new int[T * K];
                var weights = new float[T * K];
                model.Forward(input, output, Batch, Seq, ids, weights);
                Assert.IsTrue(BitwiseEqual(Floats(exp["output"]), output), "output differs from the C library's");
                for (int i = 0; i < ids.Length; i++) Assert.AreEqual(L(exp["expert_ids"][i]), ids[i], "expert_ids[" + i + "]");
                Assert.IsTrue(BitwiseEqual(Floats(exp["expert_weights"]), weights), "expert_weights differ");

                var output2 = new float[T * H];
                model.Forward(input, output2, Batch, Seq);
                Assert.IsTrue(BitwiseEqual(Floats(exp["output_no_routing"]), output2), "output without routing differs");

                ulong[] loads = model.GetExpertLoads();
                Assert.AreEqual(E, loads.Length);
                for (int e = 0; e < E; e++) Assert.AreEqual(L(exp["loads"][e]), (long)loads[e], "load of expert " + e);

                Stats s = model.GetStats();
                string[] st = exp["stats"];
                Assert.AreEqual((uint)Marshal.SizeOf(typeof(Stats)), s.StructSize);
                Assert.AreEqual(L(st[0]), s.NumExperts);
                Assert.AreEqual(L(st[1]), (long)s.ForwardCalls);
                Assert.AreEqual(L(st[2]), (long)s.Tokens);
                Assert.AreEqual(L(st[3]), (long)s.DroppedTokens);
                Assert.Greater(s.DroppedTokens, 0UL, "the capacity limit should drop something here");
                Assert.AreEqual(L(st[4]), (long)s.WeightBytes);
                Assert.AreEqual(D(st[5]), s.ExpertUtilization);
                Assert.AreEqual(D(st[6]), s.LoadCv);
                Assert.AreEqual(D(st[7]), s.LoadMaxViolation);
                Assert.AreEqual(D(st[8]), s.LoadJainIndex);
                Assert.AreEqual(D(st[9]), s.LoadNormalizedEntropy);
                Assert.AreEqual(D(st[10]), s.RoutingConfidence);
                Assert.AreEqual(D(st[11]), s.AuxLoss);
                Assert.AreEqual(D(st[12]), s.ZLoss);
                Assert.Greater(s.LatencyLastMs, 0.0);
                Assert.Greater(s.LatencyMeanMs, 0.0);
                Assert.Greater(s.LatencyP50Ms, 0.0);
                Assert.GreaterOrEqual(s.LatencyP95Ms, s.LatencyP50Ms);
                Assert.GreaterOrEqual(s.LatencyP99Ms, s.LatencyP95Ms);
                Assert.Greater(s.TokensPerSecond, 0.0);
                Assert.GreaterOrEqual(s.WorkspaceBytes, 0UL);

                model.ResetStats();
                Stats z = model.GetStats();
                Assert.AreEqual(0UL, z.ForwardCalls);
                Assert.AreEqual(0UL, z.Tokens);
                Assert.AreEqual(new ulong[E], model.GetExpertLoads());
            }
        }

        [Test]
        public void StatsLayoutMatchesTheHeader()
        {
            Assert.AreEqual(L(Expected()["stats_struct_size"][0]), Marshal.SizeOf(typeof(Stats)));
        }

        [Test]
        public void ExpertsAndTensorsMatchTheCLibrary()
        {
            var exp = Expected();
            using (var model = MakeModel())
            {
                for (int e = 0; e < E; e++)
                {
                    ExpertInfo info = model.GetExpert(e);
                    string[] x = exp["expert_" + e];
                    Assert.AreEqual(L(x[0]), (long)info.Activation, "activation of expert " + e);
                    Assert.AreEqual(L(x[1]), info.Intermediate, "width of expert " + e);
                    Assert.AreEqual(L(x[2]) != 0, info.PreNorm, "pre-norm of expert " + e);
                }
                Assert.AreEqual(ActivationFunction.SwiGlu, model.GetExpert(1).Activation);
                Assert.AreEqual(2 * I, model.GetExpert(2).Intermediate);
                Assert.AreEqual(40, model.GetExpert(4).Intermediate);

                string[] names = model.TensorNames;
                Assert.AreEqual(L(exp["tensor_count"][0]), names.Length);
                Assert.AreEqual("router.weight", names[0]);
                for (int i = 0; i < names.Length; i++)
                {
                    string[] shape = exp["tensor_shape:" + names[i]];
                    long[] dims = model.GetTensorShape(names[i]);
                    Assert.AreEqual(shape.Length, dims.Length, names[i]);
                    for (int d = 0; d < dims.Length; d++) Assert.AreEqual(L(shape[d]), dims[d], names[i]);
                    if (i < 4)
                        Assert.IsTrue(BitwiseEqual(Floats(exp["tensor:" + names[i]]), model.ReadTensor(names[i])),
                                      "values of " + names[i]);
                }
                Assert.AreEqual(exp["backend"][0], model.Backend);
            }
        }
    }
}
