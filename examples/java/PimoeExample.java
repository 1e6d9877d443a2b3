// SPDX-License-Identifier: MIT
/*
 * libpimoe from Java: create a small MoE layer, run it on a float[] and on direct FloatBuffers, look at the routing
 * and the statistics, and see how errors arrive.
 *
 * Build and run against an installed libpimoe (PREFIX the install prefix):
 *   javac -cp PREFIX/share/java/pimoe.jar -d classes PimoeExample.java
 *   java -Djava.library.path=PREFIX/lib -cp classes:PREFIX/share/java/pimoe.jar PimoeExample
 */
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import org.pimoe.Activation;
import org.pimoe.ExpertPreset;
import org.pimoe.Model;
import org.pimoe.Options;
import org.pimoe.Pimoe;
import org.pimoe.PimoeException;
import org.pimoe.Stats;

public final class PimoeExample {
  private PimoeExample() {}

  public static void main(String[] args) {
    System.out.println("libpimoe " + Pimoe.version() + " (ABI " + Pimoe.abiVersion() + ")");
    System.out.println("build: " + Pimoe.buildInfo());
    System.out.println("natives: " + Pimoe.nativeSource());
    for (String backend : Pimoe.backends()) {
      System.out.println("backend " + backend + ": "
          + (Pimoe.backendUsable(backend) ? Pimoe.backendDevice(backend) : "not usable here"));
    }

    Options options = new Options().hidden(64).numExperts(4).topK(2).intermediate(128)
        .activation(Activation.SILU).expertPreset(0, ExpertPreset.REASONING).seed(1).backend("cpu");
    try (Model model = Model.create(options)) {
      int tokens = 3;
      float[] input = new float[tokens * (int) model.hidden()];
      for (int i = 0; i < input.length; ++i) {
        input[i] = (float) Math.sin(0.1 * i);
      }

      Model.Routed routed = model.forwardRouted(input, 1, tokens);
      for (int t = 0; t < tokens; ++t) {
        System.out.printf("token %d -> experts %s weights %s, y[0..3] = %s%n", t,
            Arrays.toString(Arrays.copyOfRange(routed.expertIds, t * model.topK(), (t + 1) * model.topK())),
            Arrays.toString(Arrays.copyOfRange(routed.expertWeights, t * model.topK(), (t + 1) * model.topK())),
            Arrays.toString(Arrays.copyOfRange(routed.output, t * (int) model.hidden(), t * (int) model.hidden() + 3)));
      }

      // The same call on direct buffers: the library works on the buffers' own memory.
      FloatBuffer in = ByteBuffer.allocateDirect(4 * input.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
      FloatBuffer out = ByteBuffer.allocateDirect(4 * input.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
      in.put(input).flip();
      model.forward(in, 1, tokens, out);
      float[] fromBuffer = new float[input.length];
      out.get(fromBuffer);
      if (!Arrays.equals(fromBuffer, routed.output)) {
        throw new AssertionError("direct-buffer output differs from the float[] output");
      }
      System.out.println("direct FloatBuffer output equals the float[] output");

      Stats stats = model.stats();
      System.out.println(stats);
      System.out.println("expert loads: " + Arrays.toString(model.expertLoads()));
      System.out.println("tensors: " + model.tensorNames().size() + ", router.weight "
          + Arrays.toString(model.tensorShape("router.weight")));

      try {
        model.forward(new float[5], 1, tokens);
        throw new AssertionError("a wrong input size must fail");
      } catch (PimoeException e) {
        System.out.println("expected error: " + e.status() + ": " + e.getMessage());
      }
    }
    try {
      Model.create(new Options().topK(9));
      throw new AssertionError("top_k 9 of 8 experts must fail");
    } catch (PimoeException e) {
      System.out.println("expected error: " + e.status() + ": " + e.getMessage());
    }
    System.out.println("java example OK");
  }
}
