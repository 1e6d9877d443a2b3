// SPDX-License-Identifier: MIT
// libpimoe C++ demo: the RAII wrapper of <pimoe/pimoe.hpp>.
//
// Builds the wishlist's default layer (hidden 512, 8 experts, top-2) with the builder-style pimoe::Options, runs a
// few forward calls, prints a few statistics, and shows how a failure comes back as a pimoe::Error.
//
//   usage: demo_cpp [backend]        default: auto
//
// Build it against an installed libpimoe with:
//   c++ -std=c++17 demo.cpp $(pkg-config --cflags --libs pimoe) -o demo_cpp
#include <pimoe/pimoe.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

int main(int argc, char **argv) {
  const std::string backend = argc > 1 ? argv[1] : "auto";
  try {
    std::printf("libpimoe %s (headers %s)\n", pimoe::version().c_str(), PIMOE_VERSION_STRING);

    // The options object is only needed until the model exists: a temporary is fine.
    pimoe::Model model(pimoe::Options().hidden(512).num_experts(8).top_k(2).seed(42).backend(backend));
    const pimoe::Dims dims = model.dims();
    std::printf("model: hidden %lld, %d experts, top-%d on backend \"%s\"\n", static_cast<long long>(dims.hidden),
                dims.num_experts, dims.top_k, model.backend().c_str());

    // Deterministic pseudo-random input in [-1, 1): batch 2 x seq 64 tokens.
    const std::int64_t batch = 2, seq = 64;
    std::vector<float> input(static_cast<std::size_t>(batch * seq * dims.hidden));
    std::uint64_t state = 0x5EED;
    for (float &value : input) {
      state = state * 6364136223846793005u + 1442695040888963407u;  // Knuth's MMIX LCG
      value = static_cast<float>(static_cast<double>(state >> 40) / 8388608.0 - 1.0);
    }

    std::vector<float> output;
    for (int call = 0; call < 5; ++call) model.forward(input, batch, seq, output);
    const pimoe::ForwardResult routed = model.forward_routed(input, batch, seq);
    std::printf("token 0 -> expert %d (weight %.3f), expert %d (weight %.3f)\n", routed.expert_ids[0],
                static_cast<double>(routed.expert_weights[0]), routed.expert_ids[1],
                static_cast<double>(routed.expert_weights[1]));

    const pimoe_stats_snapshot stats = model.stats();
    std::printf("%llu calls, %llu tokens, %.0f tokens/s, latency p50 %.3f ms, Jain %.3f, aux loss %.3f\n",
                static_cast<unsigned long long>(stats.forward_calls), static_cast<unsigned long long>(stats.tokens),
                stats.tokens_per_second, stats.latency_p50_ms, stats.load_jain_index, stats.aux_loss);
    const std::vector<std::uint64_t> loads = model.expert_loads();
    std::printf("loads:");
    for (std::uint64_t load : loads) std::printf(" %llu", static_cast<unsigned long long>(load));
    std::printf("\n");

    // Models are move-only: ownership moves, the moved-from Model is empty.
    pimoe::Model owner = std::move(model);
    std::printf("after the move: model %s, owner %s\n", model ? "holds a layer" : "is empty",
                owner ? "holds the layer" : "is empty");

    // Failures throw pimoe::Error with the status and the library's message.
    try {
      pimoe::Options bad;
      bad.num_experts(8).top_k(9);     // may be caught here, by the setter...
      pimoe::Model never_built(bad);   // ...or here, when the layer is created
      std::fprintf(stderr, "error: top_k 9 of 8 experts was accepted\n");
      return 1;
    } catch (const pimoe::Error &e) {
      std::printf("caught pimoe::Error as expected: status %d (%s), message \"%s\"\n", static_cast<int>(e.status()),
                  pimoe::status_string(e.status()).c_str(), e.message().c_str());
    }
    try {
      pimoe::Options().set("no_such_option", "1");
      std::fprintf(stderr, "error: an unknown option was accepted\n");
      return 1;
    } catch (const pimoe::Error &e) {
      std::printf("caught pimoe::Error as expected: %s\n", e.what());
    }
  } catch (const pimoe::Error &e) {
    std::fprintf(stderr, "demo_cpp: %s\n", e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "demo_cpp: %s\n", e.what());
    return 1;
  }
  return 0;
}
