// SPDX-License-Identifier: MIT
// Forward(float[]) hands libpimoe the managed arrays' own memory: an LD_PRELOAD interposer on pimoe_forward
// (tests/forward_spy.c, preloaded by ctest) records the addresses that reach the C function, and they must equal the
// arrays' pinned addresses. A marshalling copy would show up as a different (native heap) address.
using System;
using System.Runtime.InteropServices;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class NoCopyTests
    {
        [DllImport("libpimoe_csharp_spy")] private static extern IntPtr pimoe_spy_last_input();
        [DllImport("libpimoe_csharp_spy")] private static extern IntPtr pimoe_spy_last_output();
        [DllImport("libpimoe_csharp_spy")] private static extern ulong pimoe_spy_calls();

        [Test]
        public void ForwardPassesTheManagedArraysThemselves()
        {
            Assert.AreEqual("1", Environment.GetEnvironmentVariable("PIMOE_CSHARP_SPY"), "run through ctest");
            using (var m = MakeModel())
            {
                foreach (int tokens in new[] { 1, 7, 300 })
                {
                    var x = Input(tokens, tokens);
                    var y = new float[x.Length];
                    GCHandle hx = GCHandle.Alloc(x, GCHandleType.Pinned);
                    GCHandle hy = GCHandle.Alloc(y, GCHandleType.Pinned);
                    try
                    {
                        ulong before = pimoe_spy_calls();
                        m.Forward(x, y, 1, tokens);
                        Assert.AreEqual(before + 1, pimoe_spy_calls(), "the spy did not see the call");
                        Assert.AreEqual(hx.AddrOfPinnedObject(), pimoe_spy_last_input(), "input was copied");
                        Assert.AreEqual(hy.AddrOfPinnedObject(), pimoe_spy_last_output(), "output was copied");
                        m.Forward(x, y, 1, tokens, new int[tokens * K], new float[tokens * K]);
                        Assert.AreEqual(hx.AddrOfPinnedObject(), pimoe_spy_last_input(), "input was copied (routing)");
                        Assert.AreEqual(hy.AddrOfPinnedObject(), pimoe_spy_last_output(), "output was copied (routing)");
                    }
                    finally
                    {
                        hx.Free();
                        hy.Free();
                    }
                }
            }
        }
    }
}
