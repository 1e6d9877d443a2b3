// SPDX-License-Identifier: MIT
// Every error path of the API surfaces as PimoeException with the library's status and message; a failed call
// leaves the model usable and its statistics unchanged.
using System;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class ErrorTests
    {
        private static PimoeException Fails(Status status, TestDelegate call, params string[] inMessage)
        {
            var e = Assert.Throws<PimoeException>(call);
            Assert.AreEqual(status, e.Status, e.Message);
            Assert.IsNotNullOrEmpty(e.Message);
            Assert.AreNotEqual(Library.StatusString(status), e.Message, "the library's message, not the status text");
            Assert.AreEqual(Library.StatusString(status), e.StatusText);
            foreach (string s in inMessage) StringAssert.Contains(s, e.Message);
            return e;
        }

        [Test]
        public void OptionSetters()
        {
            using (var o = new Options())
            {
                Fails(Status.UnknownOption, () => o.Set("no_such_option", "1"), "no_such_option");
                Fails(Status.UnknownOption, () => o.Set((OptionKey)999, 1L), "999");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Hidden, 0.5), "hidden");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Temperature, 2L), "temperature");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.TopK, -3), "top_k");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Hidden, 0), "hidden");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Temperature, -1.0), "temperature");
                Fails(Status.InvalidOption, () => o.Set("activation", "bogus"), "activation");
                Fails(Status.InvalidOption, () => o.Set("top_k", "two"), "top_k");
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Backend, 3), "backend");
                Fails(Status.NullPointer, () => o.Set(OptionKey.Backend, (string)null));
                Fails(Status.NullPointer, () => o.Set(null, "1"));
                Fails(Status.InvalidOption, () => o.SetExpertPreset(0, (ExpertPreset)99), "99");
                Fails(Status.InvalidOption, () => o.SetExpertActivation(0, (ActivationFunction)42), "42");
                Fails(Status.InvalidOption, () => o.SetExpertWidth(0, 0));
                Fails(Status.InvalidArgument, () => o.SetExpertPreNorm(-7, true), "-7");
                // The options stay usable after failed setters.
                o.Set(OptionKey.Hidden, 16).Set(OptionKey.Intermediate, 8).Set(OptionKey.Backend, "cpu");
                using (var m = new Model(o)) Assert.AreEqual(16, m.Hidden);
            }
        }

        [Test]
        public void Create()
        {
            using (var o = new Options().Set(OptionKey.NumExperts, 8).Set(OptionKey.TopK, 9))
                Fails(Status.InvalidOption, () => new Model(o), "top_k (9) exceeds num_experts (8)");
            using (var o = new Options().Set(OptionKey.NumExperts, 4).SetExpertWidth(20, 8))
                Fails(Status.InvalidOption, () => new Model(o), "20");
            using (var o = new Options())
                Fails(Status.InvalidOption, () => o.Set(OptionKey.Backend, "no_such_backend"), "no_such_backend");
            // A known backend that cannot run here fails at creation, with the reason.
            foreach (string name in new[] { "cuda", "vulkan", "vulkan:7" })
            {
                if (Library.IsBackendUsable(name)) continue;
                using (var o = new Options().Set(OptionKey.Backend, name))
                    Fails(Status.BackendUnavailable, () => new Model(o), name.Split(':')[0]);
            }
        }

        [Test]
        public void ForwardAndQueries()
        {
            using (var m = MakeModel())
            {
                var x = FixedInput();
                var y = new float[x.Length];
                var ids = new int[T * K];
                var w = new float[T * K];
                m.Forward(x, y, Batch, Seq, ids, w);
                Stats before = m.GetStats();
                ulong[] loadsBefore = m.GetExpertLoads();

                var e = Fails(Status.SizeMismatch, () => m.Forward(x, new float[x.Length - 1], Batch, Seq), "output");
                Assert.AreEqual(e.Message, m.LastError, "the model's own record of the failure");
                Fails(Status.SizeMismatch, () => m.Forward(new float[5], y, Batch, Seq), "input");
                Fails(Status.SizeMismatch, () => m.Forward(x, y, Batch, Seq + 1));
                Fails(Status.NullPointer, () => m.Forward(null, y, Batch, Seq));
                Fails(Status.NullPointer, () => m.Forward(x, null, Batch, Seq));
                Fails(Status.InvalidArgument, () => m.Forward(x, y, 0, Seq));
                Fails(Status.InvalidArgument, () => m.Forward(x, y, -1, -Seq));
                var bad = (float[])x.Clone();
                bad[77] = float.NaN;
                Fails(Status.NonFiniteInput, () => m.Forward(bad, y, Batch, Seq), "77");
                bad[77] = float.PositiveInfinity;
                Fails(Status.NonFiniteInput, () => m.Forward(bad, y, Batch, Seq), "77");
                Fails(Status.InvalidArgument, () => m.Forward(x, y, Batch, Seq, ids, null), "expert_weights");
                Fails(Status.InvalidArgument, () => m.Forward(x, y, Batch, Seq, null, w), "expert_ids");
                Fails(Status.SizeMismatch, () => m.Forward(x, y, Batch, Seq, new int[3], new float[3]), "routing_count");
                Fails(Status.SizeMismatch, () => m.Forward(x, y, Batch, Seq, new int[0], new float[0]), "routing_count");
                Assert.Throws<ArgumentException>(() => m.Forward(x, y, Batch, Seq, new int[T * K], new float[1]));

                Fails(Status.SizeMismatch, () => m.GetExpertLoads(new ulong[E - 1]));
                Fails(Status.NullPointer, () => m.GetExpertLoads(null));
                Fails(Status.NotFound, () => m.GetExpert(E), E.ToString());
                Fails(Status.NotFound, () => m.GetExpert(-1));
                Fails(Status.NotFound, () => m.GetTensorShape("no.such.tensor"), "no.such.tensor");
                Fails(Status.NotFound, () => m.ReadTensor("no.such.tensor"), "no.such.tensor");
                Fails(Status.SizeMismatch, () => m.ReadTensor("router.weight", new float[3]), "router.weight");
                Fails(Status.NullPointer, () => m.ReadTensor(null, new float[3]));

                // Nothing above changed the model or its statistics.
                Stats after = m.GetStats();
                Assert.AreEqual(before.ForwardCalls, after.ForwardCalls);
                Assert.AreEqual(before.Tokens, after.Tokens);
                Assert.AreEqual(loadsBefore, m.GetExpertLoads());
                var y2 = new float[x.Length];
                m.Forward(x, y2, Batch, Seq);
                Assert.IsTrue(BitwiseEqual(y, y2));
            }
        }

        [Test]
        public void Backends()
        {
            Fails(Status.NotFound, () => Library.IsBackendUsable("no_such_backend"), "no_such_backend");
            Assert.IsTrue(Library.IsBackendUsable("cpu"));
            Assert.IsNull(Library.BackendDevice("no_such_backend"));
        }

        [Test]
        public void ExceptionIsThrownOnTheFailingThreadOnly()
        {
            // The message travels with the exception even when another thread fails in between.
            using (var m = MakeModel())
            {
                var x = FixedInput();
                PimoeException e = null;
                var t = new System.Threading.Thread(() =>
                {
                    try { m.Forward(x, new float[1], Batch, Seq); }
                    catch (PimoeException ex) { e = ex; }
                });
                t.Start();
                t.Join();
                Assert.IsNotNull(e);
                Assert.AreEqual(Status.SizeMismatch, e.Status);
                m.Forward(x, new float[x.Length], Batch, Seq); // this thread has nothing pending
            }
        }
    }
}
