/* SPDX-License-Identifier: MIT */
/* Zero-copy probe for the Java binding's tests (LD_PRELOAD it into the JVM).
 *
 * It defines pimoe_forward, so the JNI library's calls land here first (a preloaded library comes first in symbol
 * lookup); it records the input, output, expert-id and weight pointers it is given, then calls the real
 * pimoe_forward of the libpimoe already loaded. Java reads the records and the buffers' own addresses through the
 * JNI functions below (the test System.load()s this same library), and checks that they are equal: the library
 * worked on the Java buffers' memory, not on copies. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <jni.h>
#include <stdint.h>
#include <stdio.h>

#include <pimoe/pimoe.h>

typedef pimoe_status (*forward_fn)(pimoe_model *, const float *, size_t, int64_t, int64_t, float *, size_t,
                                   int32_t *, float *, size_t);

static _Thread_local uintptr_t last_input, last_output, last_ids, last_weights;

PIMOE_API pimoe_status pimoe_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                     int64_t seq, float *output, size_t output_count, int32_t *expert_ids,
                                     float *expert_weights, size_t routing_count) {
  static forward_fn real = NULL;
  if (!real) {
    void *lib = dlopen("libpimoe.so.0", RTLD_NOW | RTLD_NOLOAD);
    real = lib ? (forward_fn)dlsym(lib, "pimoe_forward") : NULL;
    if (!real || (void *)real == (void *)&pimoe_forward) {
      fprintf(stderr, "zero_copy_probe: cannot find the real pimoe_forward\n");
      return PIMOE_ERR_INTERNAL;
    }
  }
  last_input = (uintptr_t)input;
  last_output = (uintptr_t)output;
  last_ids = (uintptr_t)expert_ids;
  last_weights = (uintptr_t)expert_weights;
  return real(model, input, input_count, batch, seq, output, output_count, expert_ids, expert_weights,
              routing_count);
}

/* long[4]: the pointers of this thread's last pimoe_forward call (input, output, ids, weights). */
JNIEXPORT jlongArray JNICALL Java_org_pimoe_ZeroCopyTest_lastForwardPointers(JNIEnv *env, jclass cls) {
  (void)cls;
  jlong values[4] = {(jlong)last_input, (jlong)last_output, (jlong)last_ids, (jlong)last_weights};
  jlongArray result = (*env)->NewLongArray(env, 4);
  if (result) (*env)->SetLongArrayRegion(env, result, 0, 4, values);
  return result;
}

/* The address of a direct buffer's memory (at index 0 of the buffer object given). */
JNIEXPORT jlong JNICALL Java_org_pimoe_ZeroCopyTest_directAddress(JNIEnv *env, jclass cls, jobject buffer) {
  (void)cls;
  return (jlong)(uintptr_t)(*env)->GetDirectBufferAddress(env, buffer);
}

/* Where a float[]'s elements live while pinned, and whether the JVM copied them (isCopy), as {address, isCopy}. */
JNIEXPORT jlongArray JNICALL Java_org_pimoe_ZeroCopyTest_criticalAddress(JNIEnv *env, jclass cls, jfloatArray a) {
  (void)cls;
  jboolean is_copy = JNI_FALSE;
  void *p = (*env)->GetPrimitiveArrayCritical(env, a, &is_copy);
  jlong values[2] = {(jlong)(uintptr_t)p, is_copy ? 1 : 0};
  if (p) (*env)->ReleasePrimitiveArrayCritical(env, a, p, JNI_ABORT);
  jlongArray result = (*env)->NewLongArray(env, 2);
  if (result) (*env)->SetLongArrayRegion(env, result, 0, 2, values);
  return result;
}
