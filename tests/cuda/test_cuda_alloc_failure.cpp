// SPDX-License-Identifier: MIT
// Device-memory failure on the CUDA backend, swept over every N: the backend's test hook (PIMOE_TEST_CUDA_FAIL_ALLOC,
// backends/cuda/cuda_memory.h) fails the N-th required buffer growth (device or page-locked memory) counted from the
// backend's creation. For create, load and forward, N = 1, 2, 3, ... until the call succeeds (it needed fewer than N
// growths, so no failure was delivered); at every N before that the call returns PIMOE_ERR_OUT_OF_MEMORY with a
// message naming what it could not allocate, leaves its out-parameter untouched, and the device memory it took is
// given back (free device memory after the sweep as before it, within the driver's granularity); after a failed
// forward the model gives output and routing bit-identical to an identical model's first forward.
// Without a usable CUDA device the binary prints why and exits 77 (ctest "Skipped", never passed).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pimoe/pimoe.h"

namespace {

const bool kDeviceChecked = [] {
  int32_t usable = 0;
  if (pimoe_backend_probe("cuda", &usable) != PIMOE_OK || !usable) {
    std::printf("test_cuda_alloc_failure did not run: %s\n", pimoe_last_error());
    std::exit(77);
  }
  return true;
}();

constexpr const char *kHook = "PIMOE_TEST_CUDA_FAIL_ALLOC";
constexpr int64_t kH = 64, kK = 2, kTokens = 37, kMaxGrowths = 10000;
pimoe_model *const kUntouched = reinterpret_cast<pimoe_model *>(static_cast<uintptr_t>(0x5a5a5a5a));

struct ModelDeleter {
  void operator()(pimoe_model *m) const { pimoe_destroy(m); }
};
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;
struct OptionsDeleter {
  void operator()(pimoe_options *o) const { pimoe_options_destroy(o); }
};
using OptionsPtr = std::unique_ptr<pimoe_options, OptionsDeleter>;

OptionsPtr cuda_options(bool shared_expert) {
  pimoe_options *o = nullptr;
  EXPECT_EQ(pimoe_options_create(&o), PIMOE_OK);
  OptionsPtr p(o);
  const std::vector<std::pair<const char *, const char *>> settings = {
      {"backend", "cuda"}, {"hidden", "64"}, {"intermediate", "96"}, {"num_experts", "8"}, {"top_k", "2"},
      {"seed", "11"},      {"threads", "1"}};
  for (const auto &kv : settings) {
    EXPECT_EQ(pimoe_options_set_by_name(o, kv.first, kv.second), PIMOE_OK) << kv.first;
  }
  if (shared_expert) {
    EXPECT_EQ(pimoe_options_set_by_name(o, "shared_width", "80"), PIMOE_OK);
  }
  return p;
}

void arm(int64_t n) { ASSERT_EQ(setenv(kHook, std::to_string(n).c_str(), 1), 0); }
void disarm() { ASSERT_EQ(unsetenv(kHook), 0); }

size_t free_device_bytes() {
  size_t free_bytes = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  return free_bytes;
}

void expect_device_memory_back(size_t before, const std::string &what) {
  const size_t after = free_device_bytes();
  // The driver hands memory out in 2 MiB pages and keeps some for itself; a leak per failed call would show as a
  // multiple of the sweep's length.
  EXPECT_LE(before, after + (size_t{8} << 20)) << what << ": " << (before - after) << " bytes of device memory gone";
}

// Sweeps one model-making call; returns the required growths it makes (the last N that failed).
int64_t sweep_model_call(const std::string &what, const std::function<pimoe_status(pimoe_model **)> &call) {
  SCOPED_TRACE(what);
  const size_t free_before = free_device_bytes();
  for (int64_t n = 1; n <= kMaxGrowths; ++n) {
    arm(n);
    pimoe_model *out = kUntouched;
    const pimoe_status s = call(&out);
    disarm();
    const std::string message = pimoe_last_error();
    if (s == PIMOE_OK) {
      pimoe_destroy(out);
      expect_device_memory_back(free_before, what);
      std::printf("[ info ] %s: %lld required growths\n", what.c_str(), static_cast<long long>(n - 1));
      return n - 1;
    }
    EXPECT_EQ(s, PIMOE_ERR_OUT_OF_MEMORY) << "N=" << n << ": " << message;
    EXPECT_NE(message.find("cuda: cannot allocate"), std::string::npos) << "N=" << n << ": " << message;
    EXPECT_EQ(out, kUntouched) << "N=" << n;
    if (::testing::Test::HasFailure()) return -1;
  }
  ADD_FAILURE() << what << ": still failing at N=" << kMaxGrowths;
  return -1;
}

std::vector<float> input() {
  std::vector<float> x(static_cast<size_t>(kTokens * kH));
  uint64_t state = 12345;
  for (float &v : x) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<float>(static_cast<int64_t>(state >> 40) % 2001 - 1000) / 500.0f;
  }
  return x;
}

struct Result {
  pimoe_status status;
  std::vector<float> y, w;
  std::vector<int32_t> ids;
};

Result run(pimoe_model *m, const std::vector<float> &x) {
  Result r{PIMOE_ERR_INTERNAL, std::vector<float>(x.size()), std::vector<float>(static_cast<size_t>(kTokens * kK)),
           std::vector<int32_t>(static_cast<size_t>(kTokens * kK))};
  r.status = pimoe_forward(m, x.data(), x.size(), 1, kTokens, r.y.data(), r.y.size(), r.ids.data(), r.w.data(),
                           r.ids.size());
  return r;
}

bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(CudaAllocationFailure, CreateLoadAndForward) {
  ASSERT_TRUE(kDeviceChecked);
  disarm();
  for (bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "with a shared expert" : "routed experts only");
    OptionsPtr o = cuda_options(shared);
    const int64_t create_growths =
        sweep_model_call("create", [&](pimoe_model **out) { return pimoe_create(o.get(), out); });
    ASSERT_GT(create_growths, 0);

    char path[] = "/tmp/pimoe_cuda_alloc_failure_XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
      pimoe_model *m = nullptr;
      ASSERT_EQ(pimoe_create(o.get(), &m), PIMOE_OK) << pimoe_last_error();
      ModelPtr model(m);
      ASSERT_EQ(pimoe_save(m, path), PIMOE_OK) << pimoe_last_error();
    }
    EXPECT_GT(sweep_model_call("load", [&](pimoe_model **out) { return pimoe_load(path, o.get(), out); }), 0);
    std::remove(path);

    // Forward: the first call of a fresh model sizes its scratch; growth k of that call is number create_growths + k.
    const std::vector<float> x = input();
    Result ref;
    {
      pimoe_model *m = nullptr;
      ASSERT_EQ(pimoe_create(o.get(), &m), PIMOE_OK) << pimoe_last_error();
      ModelPtr model(m);
      ref = run(m, x);
      ASSERT_EQ(ref.status, PIMOE_OK) << pimoe_last_error();
    }
    const size_t free_before = free_device_bytes();
    int64_t k = 1;
    for (; k <= kMaxGrowths; ++k) {
      arm(create_growths + k);
      pimoe_model *m = nullptr;
      const pimoe_status created = pimoe_create(o.get(), &m);
      disarm();
      ASSERT_EQ(created, PIMOE_OK) << "k=" << k << ": " << pimoe_last_error();
      ModelPtr model(m);
      const Result r = run(m, x);
      if (r.status == PIMOE_OK) {
        EXPECT_TRUE(same_bits(r.y, ref.y));
        break;
      }
      EXPECT_EQ(r.status, PIMOE_ERR_OUT_OF_MEMORY) << "k=" << k << ": " << pimoe_last_error();
      EXPECT_NE(std::string(pimoe_last_error()).find("cuda: cannot allocate"), std::string::npos)
          << "k=" << k << ": " << pimoe_last_error();
      const Result after = run(m, x);
      ASSERT_EQ(after.status, PIMOE_OK) << "k=" << k << ": " << pimoe_last_error();
      EXPECT_TRUE(same_bits(after.y, ref.y)) << "k=" << k << ": output differs after the failure";
      EXPECT_EQ(after.ids, ref.ids) << "k=" << k;
      EXPECT_TRUE(same_bits(after.w, ref.w)) << "k=" << k;
      if (::testing::Test::HasFailure()) return;
    }
    EXPECT_GT(k, 1) << "the first forward grew no buffer: the sweep tested nothing";
    expect_device_memory_back(free_before, "forward");
    std::printf("[ info ] forward: %lld required growths\n", static_cast<long long>(k - 1));
  }
}
