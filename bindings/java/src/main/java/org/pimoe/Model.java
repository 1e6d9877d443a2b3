// SPDX-License-Identifier: MIT
package org.pimoe;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A Mixture-of-Experts layer ({@code pimoe_model}).
 *
 * <p>Thread safety: one Model may be used by any number of threads at once; forward calls run concurrently (each
 * call holds a shared lock). {@link #close()} takes the lock exclusively: it waits for running calls to finish, and
 * every call after it throws a {@link PimoeException} ({@link Status#NULL_POINTER}, "model is closed"). Closing
 * twice is harmless. A model never closed is freed by a {@link Cleaner} once unreachable (a safety net only: close
 * it, e.g. with try-with-resources).
 *
 * <p>Tensors are fp32, row-major, shape [batch, seq, hidden]. The {@code float[]} forwards pin the arrays (JNI
 * critical regions, no copy); the {@link FloatBuffer} forwards need direct buffers in native byte order, e.g.
 * {@code ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer()}, and hand the library
 * the buffers' own memory, from their position to their limit (no copy).
 */
public final class Model implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();

  /** Owns the native handle; shared with the Cleaner (it must not reference the Model). */
  private static final class Handle implements Runnable {
    volatile long pointer;

    Handle(long pointer) {
      this.pointer = pointer;
    }

    @Override
    public void run() {
      long p = pointer;
      pointer = 0;
      if (p != 0) {
        pimoeJNI.pimoeDestroy(p);
      }
    }
  }

  private final Handle handle;
  private final Cleaner.Cleanable cleanable;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final ReentrantReadWriteLock.ReadLock readLock = lock.readLock();
  private final long hidden;
  private final int numExperts;
  private final int topK;
  private final int slots;

  private Model(long pointer) {
    handle = new Handle(pointer);
    cleanable = CLEANER.register(this, handle);
    long[] h = new long[1];
    int[] e = new int[1];
    int[] k = new int[1];
    pimoeJNI.pimoeModelDims(pointer, h, e, k);
    hidden = h[0];
    numExperts = e[0];
    topK = k[0];
    slots = (int) pimoeJNI.pimoeModelRoutingSlots(pointer);
  }

  /** A model with every option at its default (hidden 512, 8 experts, top-2, intermediate 2048). */
  public static Model create() {
    return create(null);
  }

  /** A native call that fills out[0] with a new model handle, given native options (0: defaults). */
  private interface Opener {
    void open(long options, long[] out);
  }

  // The one place that turns a fresh native handle into a Model: options are freed whatever happens, and the handle
  // is destroyed if wrapping it fails.
  private static Model open(Options options, Opener opener) {
    long opts = options == null ? 0 : options.toNative();
    try {
      long[] out = new long[1];
      opener.open(opts, out);
      try {
        return new Model(out[0]);
      } catch (RuntimeException | Error e) {
        pimoeJNI.pimoeDestroy(out[0]);
        throw e;
      }
    } finally {
      pimoeJNI.pimoeOptionsDestroy(opts);
    }
  }

  /** A model from options (null: all defaults). Bad options throw with the library's message naming them. */
  public static Model create(Options options) {
    return open(options, (opts, out) -> pimoeJNI.pimoeCreate(opts, out));
  }

  /**
   * A model from a file written by {@link #save} (libpimoe's safetensors format). The layer comes from the file;
   * only the runtime settings of options are used (backend, threads, deterministic, cpu_gemm); null: defaults.
   */
  public static Model load(String path, Options options) {
    return open(options, (opts, out) -> pimoeJNI.pimoeLoad(path, opts, out));
  }

  /**
   * Imports the MoE block of decoder layer {@code layer} of a Hugging Face checkpoint folder (config.json and
   * model.safetensors or a sharded index; pimoe_import_hf in pimoe.h lists the families). Only the runtime settings
   * of {@code options} (may be null) are used.
   */
  public static Model importHf(String checkpointDir, int layer, Options options) {
    return open(options, (opts, out) -> pimoeJNI.pimoeImportHf(checkpointDir, layer, opts, out));
  }

  /** {@link #load(String, Options)} with default runtime settings. */
  public static Model load(String path) {
    return load(path, null);
  }

  /** Saves the model (its settings and weights) to path; the file appears only when complete. */
  public void save(String path) {
    long p = acquire();
    try {
      pimoeJNI.pimoeSave(p, path);
    } finally {
      release();
    }
  }

  // ------------------------------------------------------------------ lifetime
  /** Frees the native model after any running calls finish. Idempotent. */
  @Override
  public void close() {
    ReentrantReadWriteLock.WriteLock w = lock.writeLock();
    w.lock();
    try {
      cleanable.clean(); // runs Handle.run() once
    } finally {
      w.unlock();
    }
  }

  /** Whether {@link #close()} has been called. */
  public boolean isClosed() {
    return handle.pointer == 0;
  }

  /** Takes the shared lock and returns the live handle, or throws if closed. */
  private long acquire() {
    readLock.lock();
    long p = handle.pointer;
    if (p == 0) {
      readLock.unlock();
      throw new PimoeException(Status.NULL_POINTER, "model is closed");
    }
    return p;
  }

  private void release() {
    readLock.unlock();
    Reference.reachabilityFence(this);
  }

  // ------------------------------------------------------------------ dimensions
  public long hidden() {
    return hidden;
  }

  public int numExperts() {
    return numExperts;
  }

  public int topK() {
    return topK;
  }

  /**
   * Routing slots per token in the routing outputs ({@code pimoe_model_routing_slots}): topK, or numExperts with
   * expert-choice routing.
   */
  public int routingSlots() {
    return slots;
  }

  /** The backend this model runs on ("cpu", ...). */
  public String backend() {
    long p = acquire();
    try {
      return pimoeJNI.pimoeModelBackend(p);
    } finally {
      release();
    }
  }

  /** The resolved spec of one expert (after presets and overrides). */
  public ExpertSpec expert(int expert) {
    long p = acquire();
    try {
      int[] activation = new int[1];
      long[] intermediate = new long[1];
      int[] preNorm = new int[1];
      pimoeJNI.pimoeModelExpert(p, expert, activation, intermediate, preNorm);
      return new ExpertSpec(Activation.swigToEnum(activation[0]), intermediate[0], preNorm[0] != 0);
    } finally {
      release();
    }
  }

  /** The last failure recorded on this model from any thread, or "". */
  public String lastError() {
    long p = acquire();
    try {
      return pimoeJNI.pimoeModelLastError(p);
    } finally {
      release();
    }
  }

  // ------------------------------------------------------------------ forward, arrays
  /** Runs the layer on input [batch, seq, hidden] and returns a new output array of the same shape. */
  public float[] forward(float[] input, long batch, long seq) {
    float[] output = new float[input == null ? 0 : input.length];
    forward(input, batch, seq, output, null, null);
    return output;
  }

  /** Runs the layer on input [batch, seq, hidden] into output (same element count). */
  public void forward(float[] input, long batch, long seq, float[] output) {
    forward(input, batch, seq, output, null, null);
  }

  /**
   * Runs the layer and also reports the routing: for token t and slot j (index t*S + j, S = {@link #routingSlots()},
   * slots in descending router probability) the chosen expert (-1 for an unused expert-choice slot) and its combine
   * weight. expertIds and expertWeights are both null or both hold batch*seq*S elements.
   */
  public void forward(float[] input, long batch, long seq, float[] output, int[] expertIds, float[] expertWeights) {
    if (expertIds != null && expertWeights != null && expertIds.length != expertWeights.length) {
      throw new PimoeException(Status.SIZE_MISMATCH, "forward: expertIds.length (" + expertIds.length
          + ") != expertWeights.length (" + expertWeights.length + ")");
    }
    long p = acquire();
    try {
      pimoeJNI.pimoeForward(p, input, batch, seq, output, expertIds, expertWeights);
    } finally {
      release();
    }
  }

  /** Runs the layer and returns the output together with the routing. */
  public Routed forwardRouted(float[] input, long batch, long seq) {
    long tokens = batch * seq;
    int r = tokens > 0 && tokens * slots <= Integer.MAX_VALUE ? (int) (tokens * slots) : 0;
    Routed result = new Routed(new float[input == null ? 0 : input.length], new int[r], new float[r]);
    forward(input, batch, seq, result.output, result.expertIds, result.expertWeights);
    return result;
  }

  // ------------------------------------------------------------------ forward with the full routing
  /**
   * Runs the layer into output and returns the full routing ({@code pimoe_forward_routing}): expert ids, weights,
   * dropped flags and router probabilities (see {@link Routing}).
   */
  public Routing forwardRouting(float[] input, long batch, long seq, float[] output) {
    Routing routing = Routing.allocate(batch > 0 && seq > 0 ? batch * seq : 0, slots, numExperts);
    forwardRouting(input, batch, seq, output, routing);
    return routing;
  }

  /**
   * Runs the layer into output and fills the caller's routing arrays in place (pinned, no copy; a null array is not
   * wanted; routing may be null). The non-null ones of expertIds, weights and dropped must have the same length,
   * batch*seq*{@link #routingSlots()}; probabilities holds batch*seq*numExperts.
   */
  public void forwardRouting(float[] input, long batch, long seq, float[] output, Routing routing) {
    int[] ids = routing == null ? null : routing.expertIds;
    float[] weights = routing == null ? null : routing.weights;
    byte[] dropped = routing == null ? null : routing.dropped;
    float[] probs = routing == null ? null : routing.probabilities;
    checkSlots(ids == null ? -1 : ids.length, weights == null ? -1 : weights.length,
               dropped == null ? -1 : dropped.length);
    long p = acquire();
    try {
      pimoeJNI.pimoeJavaForwardRouting(p, input, batch, seq, output, ids, weights, dropped, probs);
    } finally {
      release();
    }
  }

  /**
   * {@link #forwardRouting(float[], long, long, float[], Routing)} on direct buffers in native byte order (their
   * memory, from position to limit, is used in place). Any routing buffer may be null (not wanted).
   */
  public void forwardRouting(FloatBuffer input, long batch, long seq, FloatBuffer output, IntBuffer expertIds,
                             FloatBuffer weights, ByteBuffer dropped, FloatBuffer probabilities) {
    FloatBuffer in = direct(input, "input", false);
    FloatBuffer out = direct(output, "output", true);
    IntBuffer ids = direct(expertIds, "expertIds");
    FloatBuffer w = direct(weights, "weights", true);
    ByteBuffer d = null;
    if (dropped != null) {
      checkDirect(dropped, true, true, "dropped");
      d = dropped.position() == 0 && dropped.limit() == dropped.capacity() ? dropped : dropped.slice();
    }
    FloatBuffer probs = direct(probabilities, "probabilities", true);
    checkSlots(ids == null ? -1 : ids.capacity(), w == null ? -1 : w.capacity(), d == null ? -1 : d.capacity());
    long p = acquire();
    try {
      pimoeJNI.pimoeJavaForwardRoutingDirect(p, in, batch, seq, out, ids, w, d, probs);
    } finally {
      release();
    }
  }

  private static void checkSlots(int ids, int weights, int dropped) {
    int n = ids >= 0 ? ids : weights >= 0 ? weights : dropped;
    if ((ids >= 0 && ids != n) || (weights >= 0 && weights != n) || (dropped >= 0 && dropped != n)) {
      throw new PimoeException(Status.SIZE_MISMATCH, "forwardRouting: the routing outputs have different lengths"
          + " (expertIds " + ids + ", weights " + weights + ", dropped " + dropped + ")");
    }
  }

  /**
   * Restores the adaptive routing state (the selection bias of adaptive_bias_rate, the load average of
   * dynamic_capacity) to its value at creation or load; a no-op without them. Safe while forwards run.
   */
  public void resetAdaptiveState() {
    long p = acquire();
    try {
      pimoeJNI.pimoeModelResetAdaptiveState(p);
    } finally {
      release();
    }
  }

  // ------------------------------------------------------------------ forward, direct buffers
  /** Runs the layer on direct buffers (their memory, from position to limit, is used in place). */
  public void forward(FloatBuffer input, long batch, long seq, FloatBuffer output) {
    forward(input, batch, seq, output, null, null);
  }

  /** Runs the layer on direct buffers, with the routing written to direct buffers too (or both null). */
  public void forward(FloatBuffer input, long batch, long seq, FloatBuffer output, IntBuffer expertIds,
                      FloatBuffer expertWeights) {
    FloatBuffer in = direct(input, "input", false);
    FloatBuffer out = direct(output, "output", true);
    IntBuffer ids = direct(expertIds, "expertIds");
    FloatBuffer weights = direct(expertWeights, "expertWeights", true);
    if (ids != null && weights != null && ids.capacity() != weights.capacity()) {
      throw new PimoeException(Status.SIZE_MISMATCH, "forward: expertIds.remaining() (" + ids.capacity()
          + ") != expertWeights.remaining() (" + weights.capacity() + ")");
    }
    long p = acquire();
    try {
      pimoeJNI.pimoeForwardDirect(p, in, batch, seq, out, ids, weights);
    } finally {
      release();
    }
  }

  private static void checkDirect(Buffer b, boolean nativeOrder, boolean writable, String what) {
    if (!b.isDirect()) {
      throw new PimoeException(Status.INVALID_ARGUMENT, "forward: " + what
          + " is not a direct buffer (use ByteBuffer.allocateDirect(...).order(ByteOrder.nativeOrder())"
          + ".asFloatBuffer(), or the float[] overload)");
    }
    if (!nativeOrder) {
      throw new PimoeException(Status.INVALID_ARGUMENT, "forward: " + what
          + " is not in the native byte order (" + ByteOrder.nativeOrder() + ")");
    }
    if (writable && b.isReadOnly()) {
      throw new PimoeException(Status.INVALID_ARGUMENT, "forward: " + what + " is read-only");
    }
  }

  /** The buffer itself when it spans position 0 to its capacity, else a slice of its remaining elements. */
  private static FloatBuffer direct(FloatBuffer b, String what, boolean writable) {
    if (b == null) {
      return null;
    }
    checkDirect(b, b.order() == ByteOrder.nativeOrder(), writable, what);
    return b.position() == 0 && b.limit() == b.capacity() ? b : b.slice();
  }

  private static IntBuffer direct(IntBuffer b, String what) {
    if (b == null) {
      return null;
    }
    checkDirect(b, b.order() == ByteOrder.nativeOrder(), true, what);
    return b.position() == 0 && b.limit() == b.capacity() ? b : b.slice();
  }

  // ------------------------------------------------------------------ statistics
  /** A snapshot of every statistic. */
  public Stats stats() {
    long p = acquire();
    StatsSnapshotNative s = new StatsSnapshotNative();
    try {
      pimoeJNI.pimoeStats(p, StatsSnapshotNative.getCPtr(s), s);
      return new Stats(s);
    } finally {
      s.delete();
      release();
    }
  }

  /** Per-expert loads: (token, expert) assignments computed since creation or the last reset. */
  public long[] expertLoads() {
    long p = acquire();
    try {
      long[] counts = new long[numExperts];
      pimoeJNI.pimoeStatsExpertLoads(p, counts);
      return counts;
    } finally {
      release();
    }
  }

  /** Clears every statistic. */
  public void resetStats() {
    long p = acquire();
    try {
      pimoeJNI.pimoeStatsReset(p);
    } finally {
      release();
    }
  }

  // ------------------------------------------------------------------ tensors
  /** The names of the model's weight tensors, in the library's order. */
  public List<String> tensorNames() {
    long p = acquire();
    try {
      long n = pimoeJNI.pimoeTensorCount(p);
      List<String> names = new ArrayList<>();
      for (long i = 0; i < n; ++i) {
        names.add(pimoeJNI.pimoeTensorName(p, i));
      }
      return names;
    } finally {
      release();
    }
  }

  /** The shape of a tensor (rank 1 or 2). */
  public long[] tensorShape(String name) {
    long p = acquire();
    try {
      int[] ndim = new int[1];
      long[] dims = new long[4];
      pimoeJNI.pimoeTensorShape(p, name, ndim, dims);
      return java.util.Arrays.copyOf(dims, ndim[0]);
    } finally {
      release();
    }
  }

  /** A tensor's values, row-major. */
  public float[] readTensor(String name) {
    long[] shape = tensorShape(name);
    long count = 1;
    for (long d : shape) {
      count *= d;
    }
    if (count > Integer.MAX_VALUE - 8) {
      throw new PimoeException(Status.UNSUPPORTED, "readTensor: '" + name + "' has " + count
          + " elements, more than a Java array holds");
    }
    float[] out = new float[(int) count];
    readTensor(name, out);
    return out;
  }

  /** Copies a tensor's values into out, whose length must equal the tensor's element count. */
  public void readTensor(String name, float[] out) {
    long p = acquire();
    try {
      pimoeJNI.pimoeTensorRead(p, name, out);
    } finally {
      release();
    }
  }

  /** The output and routing of {@link #forwardRouted}. */
  public static final class Routed {
    public final float[] output;
    /** Expert of token t, slot j at index t*S + j, S = {@link Model#routingSlots()} (-1: unused slot). */
    public final int[] expertIds;
    /** Combine weight of token t, slot j at index t*S + j (0 for a slot dropped by the capacity limit). */
    public final float[] expertWeights;

    Routed(float[] output, int[] expertIds, float[] expertWeights) {
      this.output = output;
      this.expertIds = expertIds;
      this.expertWeights = expertWeights;
    }
  }
}
