// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class LifetimeTests
    {
        [Test]
        public void DisposeTwiceIsHarmless()
        {
            var m = MakeModel();
            m.Dispose();
            m.Dispose();
            Assert.IsTrue(m.IsDisposed);
            var o = new Options();
            o.Dispose();
            o.Dispose();
        }

        [Test]
        public void UseAfterDisposeThrows()
        {
            var m = MakeModel();
            var x = FixedInput();
            var y = new float[x.Length];
            m.Forward(x, y, Batch, Seq);
            m.Dispose();
            Assert.Throws<ObjectDisposedException>(() => m.Forward(x, y, Batch, Seq));
            Assert.Throws<ObjectDisposedException>(() => m.Forward(x, y, Batch, Seq, new int[T * K], new float[T * K]));
            Assert.Throws<ObjectDisposedException>(() => m.GetStats());
            Assert.Throws<ObjectDisposedException>(() => m.GetExpertLoads());
            Assert.Throws<ObjectDisposedException>(() => m.ResetStats());
            Assert.Throws<ObjectDisposedException>(() => m.GetExpert(0));
            Assert.Throws<ObjectDisposedException>(() => { var n = m.TensorNames; });
            Assert.Throws<ObjectDisposedException>(() => m.ReadTensor("router.weight"));
            Assert.Throws<ObjectDisposedException>(() => { var b = m.Backend; });
            Assert.Throws<ObjectDisposedException>(() => { var b = m.LastError; });
            Assert.AreEqual(H, m.Hidden); // plain managed facts stay readable

            var o = new Options();
            o.Dispose();
            Assert.Throws<ObjectDisposedException>(() => o.Set(OptionKey.Hidden, 8));
            Assert.Throws<ObjectDisposedException>(() => new Model(o));
        }

        [Test]
        public void DisposeWhileForwardsRunIsSafe()
        {
            // Tasks hammer one model while another disposes it: each call either completes normally or throws
            // ObjectDisposedException; nothing crashes, and the model is freed after the last call returns.
            for (int round = 0; round < 5; round++)
            {
                var m = MakeModel();
                var x = Input(round, 4);
                int completed = 0, refused = 0;
                var start = new ManualResetEventSlim(false);
                var tasks = new Task[4];
                for (int t = 0; t < tasks.Length; t++)
                {
                    tasks[t] = Task.Run(() =>
                    {
                        var y = new float[x.Length];
                        start.Wait();
                        for (int i = 0; i < 200; i++)
                        {
                            try
                            {
                                m.Forward(x, y, 1, 4);
                                Interlocked.Increment(ref completed);
                            }
                            catch (ObjectDisposedException)
                            {
                                Interlocked.Increment(ref refused);
                                return;
                            }
                        }
                    });
                }
                start.Set();
                Thread.Sleep(2 + round);
                m.Dispose();
                Task.WaitAll(tasks);
                Assert.IsTrue(m.IsDisposed);
                Assert.Greater(completed + refused, 0);
            }
        }
    }
}
