// SPDX-License-Identifier: MIT
using System.Text.RegularExpressions;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class LibraryTests
    {
        [Test]
        public void VersionAndBuild()
        {
            var exp = Expected();
            Assert.AreEqual(exp["version"][0], Library.Version);
            Assert.AreEqual(Library.BindingVersion, Library.Version, "header/library skew");
            Assert.IsTrue(Regex.IsMatch(Library.Version, @"^\d+\.\d+\.\d+$"));
            string[] p = Library.Version.Split('.');
            Assert.AreEqual(uint.Parse(p[0]) * 10000 + uint.Parse(p[1]) * 100 + uint.Parse(p[2]), Library.VersionNumber);
            Assert.AreEqual(uint.Parse(p[0]) == 0 ? 0u : uint.Parse(p[0]), Library.AbiVersion);
            Assert.AreEqual(string.Join(" ", exp["build_info"]), Library.BuildInfo);
        }

        [Test]
        public void StatusStrings()
        {
            Assert.AreEqual(0, (int)Status.Ok);
            Assert.AreEqual(13, (int)Status.Internal);
            Assert.AreEqual("unknown status", Library.StatusString((Status)1000));
            Assert.AreNotEqual("unknown status", Library.StatusString(Status.SizeMismatch));
        }

        [Test]
        public void BackendsAndDevices()
        {
            string[] names = Library.Backends;
            CollectionAssert.Contains(names, "cpu");
            foreach (string n in names)
            {
                string reason;
                bool usable = Library.IsBackendUsable(n, out reason);
                if (usable)
                {
                    Assert.IsNull(reason);
                    Assert.IsNotNullOrEmpty(Library.BackendDevice(n));
                }
                else
                {
                    Assert.IsNotNullOrEmpty(reason, n);
                }
            }
            StringAssert.StartsWith("cpu", Library.BackendDevice("cpu"));
            Assert.IsTrue(Library.IsBackendUsable("auto"));
        }

        [Test]
        public void DefaultsAndConvenienceForward()
        {
            using (var m = new Model(new Options().Set(OptionKey.Hidden, 16).Set(OptionKey.Intermediate, 32)))
            {
                Assert.AreEqual(16, m.Hidden);
                Assert.AreEqual(8, m.NumExperts);
                Assert.AreEqual(2, m.TopK);
                Assert.AreEqual(ActivationFunction.Gelu, m.GetExpert(0).Activation);
                var x = new float[3 * 16];
                for (int i = 0; i < x.Length; i++) x[i] = i / 48.0f;
                var y = m.Forward(x);
                var y2 = new float[x.Length];
                m.Forward(x, y2, 1, 3);
                Assert.IsTrue(BitwiseEqual(y, y2));
                Assert.AreEqual(2UL, m.GetStats().ForwardCalls);
                Assert.AreEqual(8u, m.GetStats().NumExperts);
            }
        }
    }
}
