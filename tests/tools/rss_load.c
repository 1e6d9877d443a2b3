/* SPDX-License-Identifier: MIT */
/* Measures resident memory after loading a ~1 GB fp32 layer (not a test: a measurement for the README / issue 3).
 *
 *   rss_load native DIR [cpu_gemm]   creates DIR/rss_native.safetensors (pimoe_save, in a child process) unless it
 *                                    exists, then pimoe_load()s it and prints VmRSS / VmHWM
 *   rss_load hf DIR [cpu_gemm]       writes a Mixtral-style checkpoint DIR/rss_hf/ (config.json + model.safetensors,
 *                                    fp32) unless it exists, then pimoe_import_hf()s layer 0 and prints the same
 *
 * The layer: hidden 1024, 80 SwiGLU experts of width 1024, top-2: 80 * 3 * 1024 * 1024 * 4 bytes = 1.007 GB.
 * Build: cc -std=c99 -O2 tests/tools/rss_load.c -Iinclude -Ibuild/include -Lbuild -lpimoe -o rss_load */
#define _POSIX_C_SOURCE 200809L
#include <pimoe/pimoe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { H = 1024, E = 80, I = 1024, K = 2 };

static long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  }
  fclose(f);
  return kb;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void check(pimoe_status s, const char *what) {
  if (s != PIMOE_OK) {
    fprintf(stderr, "%s: %s: %s\n", what, pimoe_status_string(s), pimoe_last_error());
    exit(1);
  }
}

/* In a child process, so that creating the file does not count in the parent's high-water mark. */
static void create_native(const char *path) {
  pid_t pid = fork();
  if (pid == 0) {
    pimoe_options *o = NULL;
    pimoe_model *m = NULL;
    check(pimoe_options_create(&o), "options");
    check(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H), "hidden");
    check(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, E), "experts");
    check(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, K), "top_k");
    check(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, I), "intermediate");
    check(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, PIMOE_ACT_SWIGLU), "activation");
    check(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), "backend");
    check(pimoe_options_set_string(o, PIMOE_OPT_CPU_GEMM, "openblas"), "cpu_gemm");
    if (pimoe_create(o, &m) != PIMOE_OK) { /* a build without OpenBLAS: the packed GEMM */
      check(pimoe_options_set_string(o, PIMOE_OPT_CPU_GEMM, "packed"), "cpu_gemm");
      check(pimoe_create(o, &m), "create");
    }
    check(pimoe_save(m, path), "save");
    pimoe_destroy(m);
    pimoe_options_destroy(o);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) exit(1);
}

/* A Mixtral checkpoint holding only layer 0's MoE block, fp32, with small deterministic values. */
static void create_hf(const char *dir) {
  char path[8192];
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) exit(1);
  fprintf(f,
          "{\"model_type\": \"mixtral\", \"hidden_size\": %d, \"intermediate_size\": %d, \"num_local_experts\": %d, "
          "\"num_experts_per_tok\": %d, \"num_hidden_layers\": 1, \"hidden_act\": \"silu\"}\n",
          H, I, E, K);
  fclose(f);

  /* Header: every tensor with its offsets, padded with spaces to a multiple of 8. */
  size_t cap = 1u << 20, len = 0;
  char *header = malloc(cap);
  unsigned long long offset = 0;
  len += (size_t)snprintf(header + len, cap - len,
                          "{\"model.layers.0.block_sparse_moe.gate.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                          "\"data_offsets\":[0,%llu]}",
                          E, H, (unsigned long long)E * H * 4);
  offset = (unsigned long long)E * H * 4;
  for (int e = 0; e < E; ++e) {
    const char *names[3] = {"w1", "w3", "w2"};
    for (int p = 0; p < 3; ++p) {
      unsigned long long bytes = (unsigned long long)H * I * 4;
      len += (size_t)snprintf(header + len, cap - len,
                              ",\"model.layers.0.block_sparse_moe.experts.%d.%s.weight\":{\"dtype\":\"F32\","
                              "\"shape\":[%d,%d],\"data_offsets\":[%llu,%llu]}",
                              e, names[p], p == 2 ? H : I, p == 2 ? I : H, offset, offset + bytes);
      offset += bytes;
    }
  }
  header[len++] = '}';
  while (len % 8) header[len++] = ' ';
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  f = fopen(path, "wb");
  if (!f) exit(1);
  unsigned char n8[8];
  for (int i = 0; i < 8; ++i) n8[i] = (unsigned char)((unsigned long long)len >> (8 * i));
  fwrite(n8, 1, 8, f);
  fwrite(header, 1, len, f);
  free(header);
  float *block = malloc(sizeof(float) * 65536);
  unsigned int state = 12345;
  for (int i = 0; i < 65536; ++i) {
    state = state * 1664525u + 1013904223u;
    block[i] = ((float)(state >> 8) / 16777216.0f - 0.5f) * 0.06f;
  }
  for (unsigned long long done = 0; done < offset; done += 65536 * 4) {
    unsigned long long left = offset - done;
    fwrite(block, 1, left < 65536 * 4 ? (size_t)left : 65536 * 4, f);
  }
  free(block);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s native|hf DIR [cpu_gemm]\n", argv[0]);
    return 2;
  }
  const char *gemm = argc > 3 ? argv[3] : "packed";
  char path[4096];
  int hf = strcmp(argv[1], "hf") == 0;
  if (hf) {
    snprintf(path, sizeof path, "%s/rss_hf", argv[2]);
    if (!exists(path)) create_hf(path);
  } else {
    snprintf(path, sizeof path, "%s/rss_native.safetensors", argv[2]);
    if (!exists(path)) create_native(path);
  }
  pimoe_options *o = NULL;
  check(pimoe_options_create(&o), "options");
  check(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), "backend");
  check(pimoe_options_set_string(o, PIMOE_OPT_CPU_GEMM, gemm), "cpu_gemm");
  long before = status_kb("VmRSS");
  pimoe_model *m = NULL;
  check(hf ? pimoe_import_hf(path, 0, o, &m) : pimoe_load(path, o, &m), hf ? "pimoe_import_hf" : "pimoe_load");
  long after = status_kb("VmRSS"), peak = status_kb("VmHWM");
  pimoe_stats_snapshot s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  check(pimoe_stats(m, &s), "stats");
  printf("%s (%s, cpu_gemm %s): weights %.1f MB; VmRSS before %.1f MB, after %.1f MB; VmHWM %.1f MB\n",
         hf ? "pimoe_import_hf" : "pimoe_load", path, gemm, (double)s.weight_bytes / 1e6, before / 1024.0,
         after / 1024.0, peak / 1024.0);
  pimoe_destroy(m);
  pimoe_options_destroy(o);
  return 0;
}
