// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** close() twice is harmless; every call after close() is a PimoeException, never a crash. */
class LifecycleTest {
  @Test
  void closeTwiceIsHarmless() {
    Model m = Model.create(Reference.basicOptions());
    assertFalse(m.isClosed());
    m.close();
    m.close();
    assertTrue(m.isClosed());
  }

  @Test
  void useAfterCloseIsAnError() {
    Model m = Model.create(Reference.basicOptions());
    m.close();
    float[] x = new float[64];
    FloatBuffer fb = Reference.directFloats(64);
    Executable[] calls = {
      () -> m.forward(x, 1, 1),
      () -> m.forward(x, 1, 1, new float[64]),
      () -> m.forward(x, 1, 1, new float[64], new int[2], new float[2]),
      () -> m.forwardRouted(x, 1, 1),
      () -> m.forward(fb, 1, 1, Reference.directFloats(64)),
      m::stats, m::expertLoads, m::resetStats, m::tensorNames, () -> m.tensorShape("router.weight"),
      () -> m.readTensor("router.weight"), m::backend, () -> m.expert(0), m::lastError,
    };
    for (Executable call : calls) {
      PimoeException e = assertThrows(PimoeException.class, call);
      assertEquals(Status.NULL_POINTER, e.status());
      assertEquals("model is closed", e.getMessage());
    }
    // The dimensions are plain Java values, still readable.
    assertEquals(64, m.hidden());
  }

  @Test
  void tryWithResources() {
    Model kept;
    try (Model m = Model.create(Reference.basicOptions())) {
      kept = m;
      assertEquals(64, m.forward(new float[64], 1, 1).length);
    }
    assertTrue(kept.isClosed());
  }

  @Test
  void optionsAreReusableAndCopyable() {
    Options o = Reference.basicOptions();
    Options copy = new Options(o).topK(3);
    try (Model a = Model.create(o); Model b = Model.create(copy); Model c = Model.create(o)) {
      assertEquals(2, a.topK());
      assertEquals(3, b.topK());
      assertEquals(2, c.topK());
    }
  }
}
