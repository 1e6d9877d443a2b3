// SPDX-License-Identifier: MIT
using System;
using System.IO;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class SaveLoadTests
    {
        private string dir;

        [SetUp]
        public void SetUp()
        {
            dir = Path.Combine(Path.GetTempPath(), "pimoe-csharp-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
        }

        [TearDown]
        public void TearDown() { Directory.Delete(dir, true); }

        [Test]
        public void SaveThenLoadGivesTheSameOutputs()
        {
            string path = Path.Combine(dir, "model.safetensors");
            var x = FixedInput();
            var y = new float[x.Length];
            var y2 = new float[x.Length];
            using (var m = MakeModel())
            {
                m.Forward(x, y, Batch, Seq);
                m.Save(path);
            }
            using (var o = new Options().Set(OptionKey.Backend, "cpu").Set(OptionKey.Deterministic, true))
            using (var loaded = Model.Load(path, o))
            {
                Assert.AreEqual(H, loaded.Hidden);
                Assert.AreEqual(E, loaded.NumExperts);
                Assert.AreEqual(ActivationFunction.SwiGlu, loaded.GetExpert(1).Activation);
                loaded.Forward(x, y2, Batch, Seq);
                Assert.IsTrue(BitwiseEqual(y, y2), "a loaded model computes differently");
            }
            using (var loaded = Model.Load(path)) Assert.AreEqual(K, loaded.TopK);
        }

        [Test]
        public void ImportHfRunsAndRoundTrips()
        {
            string fixtures = Environment.GetEnvironmentVariable("PIMOE_FIXTURES");
            Assert.IsNotNull(fixtures, "PIMOE_FIXTURES is set by ctest");
            string mixtral = Path.Combine(fixtures, "mixtral");
            string path = Path.Combine(dir, "imported.safetensors");
            using (var imported = Model.ImportHf(mixtral, 1))
            {
                var x = new float[3 * imported.Hidden];
                for (int i = 0; i < x.Length; ++i) x[i] = (float)Math.Sin(0.37 * i);
                var y = new float[x.Length];
                var y2 = new float[x.Length];
                imported.Forward(x, y, 1, 3);
                foreach (float v in y) Assert.IsFalse(float.IsNaN(v) || float.IsInfinity(v));
                imported.Save(path);
                using (var loaded = Model.Load(path))
                {
                    loaded.Forward(x, y2, 1, 3);
                    Assert.IsTrue(BitwiseEqual(y, y2), "the imported layer computes differently after save + load");
                }
            }
            var e = Assert.Throws<PimoeException>(() => Model.ImportHf(mixtral, 99));
            Assert.AreEqual(Status.InvalidArgument, e.Status);
            StringAssert.Contains("layer", e.Message);
        }

        [Test]
        public void Errors()
        {
            string missing = Path.Combine(dir, "missing.safetensors");
            var e = Assert.Throws<PimoeException>(() => Model.Load(missing));
            Assert.AreEqual(Status.IO, e.Status);
            StringAssert.Contains("missing.safetensors", e.Message);

            string garbage = Path.Combine(dir, "garbage.safetensors");
            File.WriteAllBytes(garbage, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 });
            e = Assert.Throws<PimoeException>(() => Model.Load(garbage));
            Assert.AreEqual(Status.Format, e.Status);
            StringAssert.Contains("garbage.safetensors", e.Message);

            using (var m = MakeModel())
            {
                string unwritable = Path.Combine(dir, "no", "such", "dir", "m.safetensors");
                e = Assert.Throws<PimoeException>(() => m.Save(unwritable));
                Assert.AreEqual(Status.IO, e.Status);
                StringAssert.Contains("m.safetensors", e.Message);
                Assert.Throws<PimoeException>(() => m.Save(null));
            }
        }
    }
}
