// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** 8 Java threads on one Model give the same results as serial calls; close() waits for running calls. */
class ConcurrencyTest {
  private static final int THREADS = 8;
  private static final int CALLS = 25;

  @Test
  void eightThreadsOnOneModelMatchSerial() throws Exception {
    try (Model m = Model.create(Reference.basicOptions())) {
      int hidden = (int) m.hidden();
      Random random = new Random(5);
      // Inputs of 1 to 3 tokens; the serial results first.
      float[][] inputs = new float[THREADS * CALLS][];
      float[][] expected = new float[inputs.length][];
      int[][] expectedIds = new int[inputs.length][];
      for (int i = 0; i < inputs.length; ++i) {
        int tokens = 1 + i % 3;
        inputs[i] = new float[tokens * hidden];
        for (int j = 0; j < inputs[i].length; ++j) {
          inputs[i][j] = random.nextFloat() * 2 - 1;
        }
        Model.Routed r = m.forwardRouted(inputs[i], tokens, 1);
        expected[i] = r.output;
        expectedIds[i] = r.expertIds;
      }
      m.resetStats();

      CountDownLatch start = new CountDownLatch(1);
      AtomicReference<Throwable> failure = new AtomicReference<>();
      float[][] got = new float[inputs.length][];
      int[][] gotIds = new int[inputs.length][];
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < THREADS; ++t) {
        final int thread = t;
        threads.add(new Thread(() -> {
          try {
            start.await();
            for (int c = 0; c < CALLS; ++c) {
              int i = c * THREADS + thread; // interleaved: every thread sees every token count
              int tokens = 1 + i % 3;
              if (i % 2 == 0) {
                Model.Routed r = m.forwardRouted(inputs[i], tokens, 1);
                got[i] = r.output;
                gotIds[i] = r.expertIds;
              } else { // direct buffers
                FloatBuffer in = Reference.directFloats(inputs[i].length);
                in.put(inputs[i]).flip();
                FloatBuffer out = Reference.directFloats(inputs[i].length);
                java.nio.IntBuffer ids = Reference.directInts(tokens * m.topK());
                FloatBuffer w = Reference.directFloats(tokens * m.topK());
                m.forward(in, tokens, 1, out, ids, w);
                got[i] = new float[inputs[i].length];
                out.get(got[i]);
                gotIds[i] = new int[tokens * m.topK()];
                ids.get(gotIds[i]);
              }
              m.stats(); // concurrent reads of the statistics too
            }
          } catch (Throwable e) {
            failure.compareAndSet(null, e);
          }
        }));
      }
      threads.forEach(Thread::start);
      start.countDown();
      for (Thread t : threads) {
        t.join();
      }
      if (failure.get() != null) {
        throw new AssertionError("a thread failed", failure.get());
      }
      for (int i = 0; i < inputs.length; ++i) {
        assertArrayEquals(expected[i], got[i], 0.0f, "call " + i);
        assertArrayEquals(expectedIds[i], gotIds[i], "call " + i);
      }
      Stats s = m.stats();
      assertEquals(THREADS * CALLS, s.forwardCalls);
    }
  }

  @Test
  void closeWaitsForRunningCallsAndLaterCallsFail() throws Exception {
    Model m = Model.create(Reference.basicOptions());
    float[] x = new float[4 * 64];
    AtomicInteger completed = new AtomicInteger();
    AtomicReference<Throwable> unexpected = new AtomicReference<>();
    CountDownLatch running = new CountDownLatch(4);
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < 4; ++t) {
      threads.add(new Thread(() -> {
        float[] y = new float[x.length];
        running.countDown();
        try {
          while (true) {
            m.forward(x, 4, 1, y);
            completed.incrementAndGet();
          }
        } catch (PimoeException e) {
          if (!"model is closed".equals(e.getMessage()) || e.status() != Status.NULL_POINTER) {
            unexpected.set(e);
          }
        } catch (Throwable e) {
          unexpected.set(e);
        }
      }));
    }
    threads.forEach(Thread::start);
    running.await();
    while (completed.get() < 20) {
      Thread.onSpinWait();
    }
    m.close();
    for (Thread t : threads) {
      t.join(10000);
      assertTrue(!t.isAlive());
    }
    if (unexpected.get() != null) {
      throw new AssertionError("unexpected", unexpected.get());
    }
    assertTrue(m.isClosed());
  }
}
