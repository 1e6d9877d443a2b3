// SPDX-License-Identifier: MIT
// bench_cuda: libpimoe's CUDA backend on the standard shapes (docs/design.md, "Standard shapes"), against same-run
// references.
//
// For each shape (S, F, C, D) and token count it times pimoe_forward_cuda (input and output already on the GPU, the
// bench's stream; the call returns when the output is complete) and reports, with medians over the timed calls:
//   us        wall time of one call
//   tok/s     tokens / time
//   TFLOP/s   effective: 2*T*(k + shared)*H*I*3 (SwiGLU) + 2*T*H*E (router), over the time
//   wt GB/s   bytes of weights the call must read (router + the distinct experts its tokens touched + shared), over
//             the time: the rate that bounds decode-sized calls
// the same layer called with host buffers (pimoe_forward on the same model, the same inputs in host memory):
//   host us   wall time of one pimoe_forward call: the front end's checks, the copies in and out, the kernels
//   host/dev  host us / us: what the copies between the caller's memory and the GPU add
//   check us  a pimoe_forward call whose input ends in a NaN: the front end's validation alone (it reads the whole
//             input, then rejects it before any backend work)
// and the same-run references:
//   copy      device-to-device cudaMemcpy of 1 GiB, counting bytes read + written (the achievable HBM bandwidth)
//   cuBLAS    cublasGemmEx of the same FLOPs as dense GEMMs, M = T*(k + shared) rows: [M,H]x[H,2I] and [M,I]x[I,H],
//             in the layer's weight type with fp32 accumulation (the machine's matrix rate at that size)
// Weights are libpimoe's seeded initialisation (PIMOE_OPT_SEED); inputs are uniform in [-1, 1], several different
// ones in rotation so that decode calls do not find "their" experts in the cache. --dtype takes a list of
// weight_dtypes (bf16, fp16, fp32, int8, int4, fp8_e4m3, mxfp4), each run over every shape in turn in the same
// process: an expert's bytes are what the backend holds for it (pimoe_stats' weight_bytes less the router, over the
// experts), so wt GB/s counts codes, scales and zero points as read; cuBLAS runs in bf16 for the compact formats.
//
// Usage: bench_cuda [--shapes S,F,C,D] [--tokens 1,16,512,4096] [--dtype bf16[,int4,...]] [--min-time S]
//                   [--json FILE]
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <pimoe/pimoe.h>
#include <pimoe/pimoe_cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

#define CUDA_OK(expr)                                                                            \
  do {                                                                                           \
    cudaError_t e_ = (expr);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)
#define PIMOE_OK_OR_DIE(expr)                                                                          \
  do {                                                                                                 \
    pimoe_status s_ = (expr);                                                                          \
    if (s_ != PIMOE_OK) {                                                                              \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, pimoe_last_error());          \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

struct Shape {
  std::string name;
  int64_t H, I, E, k;
  bool deepseek;  // sigmoid scores with selection bias, 8 groups / top-4, routed scaling 2.5, one shared expert
};

const Shape kShapes[] = {
    {"S", 512, 2048, 8, 2, false},
    {"F", 2048, 768, 128, 8, false},
    {"C", 4096, 14336, 8, 2, false},
    {"D", 7168, 2048, 256, 8, true},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of fn() over at least 10 calls and min_time seconds (at most 5000 calls).
template <typename Fn>
double time_calls(double min_time, const Fn &fn) {
  std::vector<double> times;
  const double t_begin = now_s();
  while (times.size() < 10 || (now_s() - t_begin < min_time && times.size() < 5000)) {
    const double t0 = now_s();
    fn(static_cast<int>(times.size()));
    times.push_back(now_s() - t0);
  }
  return median(times);
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

// Device-to-device copy bandwidth (read + write bytes) over a 1 GiB buffer, median of 10.
double copy_bandwidth(cudaStream_t st) {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CUDA_OK(cudaMalloc(&a, bytes));
  CUDA_OK(cudaMalloc(&b, bytes));
  CUDA_OK(cudaMemsetAsync(a, 1, bytes, st));
  cudaEvent_t e0, e1;
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    CUDA_OK(cudaEventRecord(e0, st));
    CUDA_OK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st));
    CUDA_OK(cudaEventRecord(e1, st));
    CUDA_OK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) t.push_back(ms * 1e-3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / median(t);
}

cudaDataType cuda_type(const std::string &dtype) {
  return dtype == "bf16" ? CUDA_R_16BF : dtype == "fp16" ? CUDA_R_16F : CUDA_R_32F;
}

// cuBLAS on the dense GEMMs of the same FLOPs (M rows): seconds per pair of GEMMs, median.
double cublas_time(cublasHandle_t h, cudaStream_t st, const std::string &dtype, int64_t M, int64_t H, int64_t I) {
  const size_t es = dtype == "fp32" ? 4 : 2;
  void *x = nullptr, *w1 = nullptr, *h1 = nullptr, *w2 = nullptr, *y = nullptr;
  CUDA_OK(cudaMalloc(&x, es * M * H));
  CUDA_OK(cudaMalloc(&w1, es * H * 2 * I));
  CUDA_OK(cudaMalloc(&h1, es * M * 2 * I));
  CUDA_OK(cudaMalloc(&w2, es * I * H));
  CUDA_OK(cudaMalloc(&y, es * M * H));
  // Small non-zero values (zeros can run faster than real data).
  CUDA_OK(cudaMemsetAsync(x, 0x3c, es * M * H, st));
  CUDA_OK(cudaMemsetAsync(w1, 0x3c, es * H * 2 * I, st));
  CUDA_OK(cudaMemsetAsync(w2, 0x3c, es * I * H, st));
  const cudaDataType t = cuda_type(dtype);
  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&] {
    // Row-major Y[M,N] = X[M,K] W[N,K]^T is column-major Y^T = W X^T.
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(2 * I), static_cast<int>(M), static_cast<int>(H),
                 &alpha, w1, t, static_cast<int>(H), x, t, static_cast<int>(H), &beta, h1, t, static_cast<int>(2 * I),
                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(H), static_cast<int>(M), static_cast<int>(I), &alpha,
                 w2, t, static_cast<int>(I), h1, t, static_cast<int>(2 * I), &beta, y, t, static_cast<int>(H),
                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  cudaEvent_t e0, e1;
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) run();
  std::vector<double> t_s;
  for (int i = 0; i < 15; ++i) {
    CUDA_OK(cudaEventRecord(e0, st));
    run();
    CUDA_OK(cudaEventRecord(e1, st));
    CUDA_OK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
    t_s.push_back(ms * 1e-3);
  }
  CUDA_OK(cudaGetLastError());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  for (void *p : {x, w1, h1, w2, y}) cudaFree(p);
  return median(t_s);
}

}  // namespace

int main(int argc, char **argv) {
  std::string shapes = "S,F,C,D", tokens_arg = "1,16,512,4096", dtypes = "bf16", json;
  double min_time = 0.3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shapes") shapes = next();
    else if (a == "--tokens") tokens_arg = next();
    else if (a == "--dtype") dtypes = next();
    else if (a == "--min-time") min_time = std::atof(next().c_str());
    else if (a == "--json") json = next();
    else {
      std::fprintf(stderr, "usage: bench_cuda [--shapes S,F,C,D] [--tokens 1,16,512,4096] [--dtype bf16,int4] "
                           "[--min-time S] [--json FILE]\n");
      return 2;
    }
  }
  cudaStream_t st;
  CUDA_OK(cudaStreamCreate(&st));
  cublasHandle_t blas;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return 1;
  cublasSetStream(blas, st);
  const double copy_bw = copy_bandwidth(st);
  std::printf("device: %s\n", pimoe_backend_device("cuda"));
  std::printf("copy bandwidth (D2D, read+write): %.1f GB/s\n", copy_bw / 1e9);
  FILE *out = json.empty() ? nullptr : std::fopen(json.c_str(), "w");
  if (out) std::fprintf(out, "{\"copy_gbps\": %.3f, \"cases\": [\n", copy_bw / 1e9);
  bool first = true;
  std::printf("%-9s %-5s %6s %10s %12s %9s %10s %9s %11s %9s %9s %10s %9s %9s\n", "dtype", "shape", "T", "us", "tok/s",
              "TFLOP/s", "wt GB/s", "wt/copy", "cuBLAS TF", "vs cuBLAS", "floor x", "host us", "host/dev", "check us");
  for (const std::string &dtype : split(dtypes))
  for (const std::string &name : split(shapes)) {
    const Shape *sh = nullptr;
    for (const Shape &s : kShapes) {
      if (s.name == name) sh = &s;
    }
    if (!sh) {
      std::fprintf(stderr, "unknown shape %s\n", name.c_str());
      return 2;
    }
    const double t_create = now_s();
    pimoe_options *o = nullptr;
    PIMOE_OK_OR_DIE(pimoe_options_create(&o));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, sh->H));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, sh->I));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, sh->E));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, sh->k));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, PIMOE_ACT_SWIGLU));
    PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_SEED, 1234));
    PIMOE_OK_OR_DIE(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cuda"));
    PIMOE_OK_OR_DIE(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, dtype.c_str()));
    const int64_t shared = sh->deepseek ? 1 : 0;
    if (sh->deepseek) {
      PIMOE_OK_OR_DIE(pimoe_options_set_string(o, PIMOE_OPT_ROUTER_SCORING, "sigmoid"));
      PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_BIAS, 1));
      PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_NUM_GROUPS, 8));
      PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_TOPK_GROUPS, 4));
      PIMOE_OK_OR_DIE(pimoe_options_set_float(o, PIMOE_OPT_ROUTED_SCALING, 2.5));
      PIMOE_OK_OR_DIE(pimoe_options_set_int(o, PIMOE_OPT_SHARED_WIDTH, sh->I));
    }
    pimoe_model *m = nullptr;
    PIMOE_OK_OR_DIE(pimoe_create(o, &m));
    pimoe_options_destroy(o);
    std::printf("# shape %s: H=%lld I=%lld E=%lld k=%lld%s, created in %.1f s\n", sh->name.c_str(),
                static_cast<long long>(sh->H), static_cast<long long>(sh->I), static_cast<long long>(sh->E),
                static_cast<long long>(sh->k), sh->deepseek ? " sigmoid 8 groups/top-4 + 1 shared" : "",
                now_s() - t_create);
    pimoe_stats_snapshot stats{};
    stats.struct_size = sizeof stats;
    PIMOE_OK_OR_DIE(pimoe_stats(m, &stats));
    const double expert_bytes = (static_cast<double>(stats.weight_bytes) - 4.0 * sh->E * sh->H) / (sh->E + shared);
    const bool float_type = dtype == "fp32" || dtype == "bf16" || dtype == "fp16";
    const std::string blas_type = float_type ? dtype : "bf16";
    for (const std::string &tstr : split(tokens_arg)) {
      const int64_t T = std::atoll(tstr.c_str());
      const int pool = T <= 16 ? 32 : 2;
      const size_t n = static_cast<size_t>(T * sh->H);
      std::vector<float *> xs(pool);
      std::mt19937_64 gen(static_cast<uint64_t>(T) * 7919 + 1);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      std::vector<std::vector<float>> hxs(static_cast<size_t>(pool), std::vector<float>(n));
      for (int p = 0; p < pool; ++p) {
        for (float &f : hxs[p]) f = dist(gen);
        CUDA_OK(cudaMalloc(reinterpret_cast<void **>(&xs[p]), n * 4));
        CUDA_OK(cudaMemcpy(xs[p], hxs[p].data(), n * 4, cudaMemcpyHostToDevice));
      }
      float *y = nullptr;
      CUDA_OK(cudaMalloc(reinterpret_cast<void **>(&y), n * 4));
      std::vector<int32_t> ids(static_cast<size_t>(T * sh->k));
      std::vector<float> wts(ids.size());
      // Warm-up (scratch allocation, first launches), then one timing to size the batch.
      for (int i = 0; i < 3; ++i) {
        PIMOE_OK_OR_DIE(pimoe_forward_cuda(m, xs[i % pool], n, 1, T, y, n, nullptr, nullptr, 0, st));
      }
      std::vector<double> times;
      double touched_bytes_sum = 0.0;
      const double t_begin = now_s();
      int calls = 0;
      while (calls < 10 || (now_s() - t_begin < min_time && calls < 5000)) {
        const double t0 = now_s();
        PIMOE_OK_OR_DIE(pimoe_forward_cuda(m, xs[calls % pool], n, 1, T, y, n, ids.data(), wts.data(), ids.size(), st));
        times.push_back(now_s() - t0);
        const std::set<int32_t> touched(ids.begin(), ids.end());
        touched_bytes_sum += static_cast<double>(touched.size()) * expert_bytes;
        ++calls;
      }
      const double t = median(times);
      // The same calls with host buffers (pageable memory, as a caller's arrays usually are).
      std::vector<float> hy(n);
      for (int i = 0; i < 3; ++i) {
        PIMOE_OK_OR_DIE(pimoe_forward(m, hxs[i % pool].data(), n, 1, T, hy.data(), n, nullptr, nullptr, 0));
      }
      const double t_host = time_calls(min_time, [&](int i) {
        PIMOE_OK_OR_DIE(pimoe_forward(m, hxs[i % pool].data(), n, 1, T, hy.data(), n, ids.data(), wts.data(),
                                      ids.size()));
      });
      std::vector<float> bad(hxs[0]);
      bad.back() = std::nanf("");
      const double t_check = time_calls(min_time / 4, [&](int) {
        if (pimoe_forward(m, bad.data(), n, 1, T, hy.data(), n, nullptr, nullptr, 0) != PIMOE_ERR_NON_FINITE_INPUT) {
          std::fprintf(stderr, "a NaN input was not rejected\n");
          std::exit(1);
        }
      });
      const double wt_bytes = touched_bytes_sum / calls + 4.0 * sh->E * sh->H + shared * expert_bytes;
      const double flops = 2.0 * T * (sh->k + shared) * sh->H * sh->I * 3 + 2.0 * T * sh->H * sh->E;
      const double cublas_s = cublas_time(blas, st, blas_type, T * (sh->k + shared), sh->H, sh->I);
      const double cublas_tf = (2.0 * T * (sh->k + shared) * sh->H * sh->I * 3) / cublas_s / 1e12;
      const double tf = flops / t / 1e12, wbw = wt_bytes / t;
      const double floor_s = wt_bytes / copy_bw;
      std::printf("%-9s %-5s %6lld %10.1f %12.0f %9.2f %10.1f %9.3f %11.1f %9.3f %9.2f %10.1f %9.2f %9.1f\n",
                  dtype.c_str(), sh->name.c_str(), static_cast<long long>(T), t * 1e6, T / t, tf, wbw / 1e9, wbw / copy_bw, cublas_tf,
                  tf / cublas_tf, t / floor_s, t_host * 1e6, t_host / t, t_check * 1e6);
      std::fflush(stdout);
      if (out) {
        std::fprintf(out,
                     "%s{\"dtype\": \"%s\", \"shape\": \"%s\", \"tokens\": %lld, \"us\": %.3f, \"tflops\": %.4f, \"weight_gbps\": %.3f, "
                     "\"weight_bytes\": %.0f, \"cublas_tflops\": %.3f, \"calls\": %d, \"host_us\": %.3f, "
                     "\"host_ratio\": %.4f, \"check_us\": %.3f}",
                     first ? "" : ",\n", dtype.c_str(), sh->name.c_str(), static_cast<long long>(T), t * 1e6, tf, wbw / 1e9,
                     wt_bytes, cublas_tf, calls, t_host * 1e6, t_host / t, t_check * 1e6);
        first = false;
      }
      for (float *p : xs) cudaFree(p);
      cudaFree(y);
    }
    pimoe_destroy(m);
  }
  if (out) {
    std::fprintf(out, "\n]}\n");
    std::fclose(out);
  }
  cublasDestroy(blas);
  cudaStreamDestroy(st);
  return 0;
}
