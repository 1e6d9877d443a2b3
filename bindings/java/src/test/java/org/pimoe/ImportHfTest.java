// SPDX-License-Identifier: MIT
package org.pimoe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Model.importHf on the committed Mixtral fixture (tests/fixtures/mixtral; its parity with the transformers code is
 * pinned by the C++ suite): the imported layer runs, survives save + load bit for bit, and a dense or missing layer is
 * a PimoeException with the library's message.
 */
class ImportHfTest {
  private static String mixtral() {
    String fixtures = System.getProperty("pimoe.test.fixtures");
    assertNotNull(fixtures, "-Dpimoe.test.fixtures is set by ctest");
    return Path.of(fixtures, "mixtral").toString();
  }

  @Test
  void importedLayerRunsAndRoundTrips() throws Exception {
    Path saved = Files.createTempFile("pimoe-import", ".safetensors");
    try (Model imported = Model.importHf(mixtral(), 1, null)) {
      float[] x = new float[(int) (3 * imported.hidden())];
      for (int i = 0; i < x.length; ++i) x[i] = (float) Math.sin(0.37 * i);
      float[] y = imported.forward(x, 1, 3);
      for (float v : y) assertTrue(Float.isFinite(v));
      imported.save(saved.toString());
      try (Model loaded = Model.load(saved.toString())) {
        assertArrayEquals(y, loaded.forward(x, 1, 3));
      }
    } finally {
      Files.deleteIfExists(saved);
    }
  }

  @Test
  void missingLayerIsAnError() {
    PimoeException e = assertThrows(PimoeException.class, () -> Model.importHf(mixtral(), 99, null));
    assertEquals(Status.INVALID_ARGUMENT, e.status());
    assertTrue(e.getMessage().contains("layer"), e.getMessage());
  }
}
