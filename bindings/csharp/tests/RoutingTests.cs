// SPDX-License-Identifier: MIT
// ForwardRouting (pimoe_forward_routing), the routing-feature options, ResetAdaptiveState and callback experts, bit
// for bit against the C library (records written by bindings/reference/reference.c).
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class RoutingTests
    {
        static Options RoutingBase()
        {
            return new Options().Set(OptionKey.Hidden, H).Set(OptionKey.NumExperts, E).Set(OptionKey.TopK, K)
                .Set(OptionKey.Intermediate, I).Set(OptionKey.Seed, 99).Set(OptionKey.Threads, 1)
                .Set(OptionKey.Backend, "cpu");
        }

        static void Scale(int expert, float[] input, float[] output, int rows, int hidden)
        {
            Assert.AreEqual(rows * hidden, input.Length);
            float f = expert + 1;
            for (int i = 0; i < input.Length; i++) output[i] = input[i] * f;
        }

        static void Check(string name, Model model, int calls)
        {
            var exp = Expected();
            Assert.AreEqual(L(exp[name + ":slots"][0]), model.RoutingSlots, name + ": routing slots");
            for (int c = 0; c <= calls; c++)
            {
                if (c == calls) model.ResetAdaptiveState();
                var input = Input(c == calls ? 0 : c, T);
                var output = new float[T * H];
                Routing r = model.ForwardRouting(input, output, Batch, Seq);
                string p = name + ":" + c + ":";
                Assert.IsTrue(BitwiseEqual(Floats(exp[p + "output"]), output), p + "output");
                Assert.AreEqual(exp[p + "ids"].Select(L).ToArray(), r.ExpertIds.Select(x => (long)x).ToArray(), p + "ids");
                Assert.IsTrue(BitwiseEqual(Floats(exp[p + "weights"]), r.Weights), p + "weights");
                Assert.AreEqual(exp[p + "dropped"].Select(L).ToArray(), r.Dropped.Select(x => (long)x).ToArray(), p + "dropped");
                Assert.IsTrue(BitwiseEqual(Floats(exp[p + "probs"]), r.Probabilities), p + "probs");
            }
        }

        [Test]
        public void RoutingFeaturesAndAdaptiveResetMatchTheCLibrary()
        {
            using (var o = RoutingBase().SetWeightDtype("bf16").SetAttentionHeads(2).SetAttentionHeadDim(8)
                       .SetAttentionCausal(true).SetCombineAttentionDim(16).SetGroupLevels("2:1,2:2")
                       .SetAdaptiveBiasRate(0.01).Set(OptionKey.CapacityFactor, 1.0).SetDynamicCapacity(true)
                       .SetCapacityMomentum(0.8).SetRoutingMode("token_choice"))
            using (var m = new Model(o))
            {
                Assert.AreEqual(K, m.RoutingSlots);
                Check("features", m, 3);
            }
        }

        [Test]
        public void ExpertChoiceHasNumExpertsSlotsAndMatchesTheCLibrary()
        {
            using (var o = RoutingBase().SetRoutingMode("expert_choice").Set(OptionKey.CapacityFactor, 1.5))
            using (var m = new Model(o))
            {
                Assert.AreEqual(E, m.RoutingSlots);
                Check("expert_choice", m, 1);
                var exp = Expected();
                Assert.IsTrue(exp["expert_choice:0:ids"].Contains("-1"), "unused expert-choice slots are -1");
                // Forward's routing outputs have the same slots.
                var ids = new int[T * E];
                var w = new float[T * E];
                m.Forward(Input(0, T), new float[T * H], Batch, Seq, ids, w);
                Assert.AreEqual(exp["expert_choice:0:ids"].Select(L).ToArray(), ids.Select(x => (long)x).ToArray());
            }
        }

        [Test]
        public void PartialOutputsAndArgumentChecks()
        {
            var exp = Expected();
            using (var o = RoutingBase().SetRoutingMode("expert_choice").Set(OptionKey.CapacityFactor, 1.5))
            using (var m = new Model(o))
            {
                var probs = new float[T * E];
                var output = new float[T * H];
                m.ForwardRouting(Input(0, T), output, Batch, Seq, new Routing(null, null, null, probs));
                Assert.IsTrue(BitwiseEqual(Floats(exp["expert_choice:0:probs"]), probs));
                m.ForwardRouting(Input(0, T), output, Batch, Seq, null);
                Assert.Throws<ArgumentException>(() => m.ForwardRouting(Input(0, T), output, Batch, Seq,
                    new Routing(new int[3], new float[4], null, null)));
                var e = Assert.Throws<PimoeException>(() => m.ForwardRouting(Input(0, T), output, Batch, Seq,
                    new Routing(new int[3], null, null, null)));
                Assert.AreEqual(Status.SizeMismatch, e.Status);
                e = Assert.Throws<PimoeException>(() => m.ForwardRouting(Input(0, T), output, Batch, Seq,
                    new Routing(null, null, null, new float[0])));
                Assert.AreEqual(Status.SizeMismatch, e.Status);
            }
        }

        static Options CallbackOptions(ExpertFunction fn)
        {
            return RoutingBase().Set(OptionKey.CapacityFactor, 1.25).SetExpertCallback(2, fn).SetExpertCallback(5, fn);
        }

        [Test]
        public void CallbackExpertsMatchTheCLibrary()
        {
            Model m;
            using (var o = CallbackOptions(Scale)) m = new Model(o);
            using (m)
            {
                GC.Collect(); // the options' delegates must survive through the model
                GC.WaitForPendingFinalizers();
                Assert.AreEqual(0, m.GetExpert(2).Intermediate);
                Check("callback", m, 1);
                var exp = Expected();
                Assert.IsTrue(exp["callback:0:ids"].Contains("2") || exp["callback:0:ids"].Contains("5"),
                              "the input routes tokens to a callback expert");
                // Concurrent calls run the callback concurrently; every result is still the C library's.
                var want = Floats(exp["callback:0:output"]);
                var failures = 0;
                var threads = new List<Thread>();
                for (int t = 0; t < 6; t++)
                {
                    var th = new Thread(() =>
                    {
                        for (int i = 0; i < 20; i++)
                        {
                            var y = new float[T * H];
                            m.Forward(Input(0, T), y, Batch, Seq);
                            if (!BitwiseEqual(want, y)) Interlocked.Increment(ref failures);
                        }
                    });
                    th.Start();
                    threads.Add(th);
                }
                foreach (var th in threads) th.Join();
                Assert.AreEqual(0, failures);
            }
        }

        [Test]
        public void CallbackExceptionsSurfaceAsStatusCallback()
        {
            var exp = Expected();
            var boom = new InvalidOperationException("boom from C#");
            bool fail = false;
            using (var o = CallbackOptions((expert, input, output, rows, hidden) =>
                   {
                       if (fail) throw boom;
                       Scale(expert, input, output, rows, hidden);
                   }))
            using (var m = new Model(o))
            {
                fail = true;
                var e = Assert.Throws<PimoeException>(() => m.Forward(Input(0, T), new float[T * H], Batch, Seq));
                Assert.AreEqual(Status.Callback, e.Status);
                Assert.AreEqual((int)Status.Callback, (int)L(exp["callback_failure_status"][0]));
                Assert.AreEqual(string.Join(" ", exp["callback_failure_message"]), e.Message);
                Assert.AreSame(boom, e.InnerException);
                e = Assert.Throws<PimoeException>(() => m.ForwardRouting(Input(0, T), new float[T * H], Batch, Seq));
                Assert.AreSame(boom, e.InnerException);
                e = Assert.Throws<PimoeException>(() => m.Forward(Input(0, T), new float[T * H], Batch, Seq,
                                                                  new int[T * K], new float[T * K]));
                Assert.AreSame(boom, e.InnerException);
                // The model stays usable; a later unrelated failure carries no stale inner exception.
                fail = false;
                var y = new float[T * H];
                m.Forward(Input(0, T), y, Batch, Seq);
                Assert.IsTrue(BitwiseEqual(Floats(exp["callback:0:output"]), y));
                e = Assert.Throws<PimoeException>(() => m.Forward(Input(0, T), new float[3], Batch, Seq));
                Assert.AreEqual(Status.SizeMismatch, e.Status);
                Assert.IsNull(e.InnerException);
                e = Assert.Throws<PimoeException>(() => m.SetExpertCallback(0, Scale));
                Assert.AreEqual(Status.InvalidArgument, e.Status);
            }
        }

        [Test]
        public void CallbacksAfterLoad()
        {
            var exp = Expected();
            string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(),
                                                 "pimoe_cs_callback_" + Guid.NewGuid() + ".safetensors");
            try
            {
                using (var o = CallbackOptions(Scale))
                using (var m = new Model(o)) m.Save(path);
                using (var m = Model.Load(path, new Options().Set(OptionKey.Backend, "cpu").Set(OptionKey.Threads, 1)))
                {
                    var e = Assert.Throws<PimoeException>(() => m.Forward(Input(0, T), new float[T * H], Batch, Seq));
                    Assert.AreEqual(Status.Callback, e.Status);
                    Assert.IsNull(e.InnerException);
                    m.SetExpertCallback(2, Scale);
                    m.SetExpertCallback(5, Scale);
                    var y = new float[T * H];
                    m.Forward(Input(0, T), y, Batch, Seq);
                    Assert.IsTrue(BitwiseEqual(Floats(exp["callback:0:output"]), y));
                }
            }
            finally
            {
                System.IO.File.Delete(path);
            }
        }

        [Test]
        public void CallbackStatusIsKnown()
        {
            Assert.AreEqual(14, (int)Status.Callback);
            Assert.IsNotEmpty(Library.StatusString(Status.Callback));
        }
    }
}
