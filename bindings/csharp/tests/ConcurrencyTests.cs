// SPDX-License-Identifier: MIT
using System.Threading.Tasks;
using NUnit.Framework;
using Pimoe;
using static PimoeTests.TestUtil;

namespace PimoeTests
{
    [TestFixture]
    public class ConcurrencyTests
    {
        [Test]
        public void TasksOnOneModelGiveTheSerialResults()
        {
            const int inputs = 16, tokens = 3, repeats = 10;
            using (var m = MakeModel())
            {
                var x = new float[inputs][];
                var serial = new float[inputs][];
                var serialIds = new int[inputs][];
                for (int i = 0; i < inputs; i++)
                {
                    x[i] = Input(i, tokens);
                    serial[i] = new float[x[i].Length];
                    serialIds[i] = new int[tokens * K];
                    m.Forward(x[i], serial[i], 1, tokens, serialIds[i], new float[tokens * K]);
                }
                m.ResetStats();

                var tasks = new Task<bool>[8];
                for (int t = 0; t < tasks.Length; t++)
                {
                    int first = t;
                    tasks[t] = Task.Run(() =>
                    {
                        bool same = true;
                        var y = new float[tokens * H];
                        var ids = new int[tokens * K];
                        var w = new float[tokens * K];
                        for (int r = 0; r < repeats; r++)
                            for (int j = 0; j < inputs; j++)
                            {
                                int i = (first + j) % inputs;
                                m.Forward(x[i], y, 1, tokens, ids, w);
                                same &= BitwiseEqual(serial[i], y);
                                for (int k = 0; k < ids.Length; k++) same &= ids[k] == serialIds[i][k];
                                if (j % 5 == 0) m.GetStats();
                            }
                        return same;
                    });
                }
                Task.WaitAll(tasks);
                foreach (var t in tasks) Assert.IsTrue(t.Result, "a concurrent result differs from the serial one");
                Stats s = m.GetStats();
                Assert.AreEqual((ulong)(tasks.Length * repeats * inputs), s.ForwardCalls);
                Assert.AreEqual((ulong)(tasks.Length * repeats * inputs * tokens), s.Tokens);
            }
        }
    }
}
