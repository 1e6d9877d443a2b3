// SPDX-License-Identifier: MIT
/* Java part of the libpimoe SWIG interface (included by ../pimoe.i under SWIGJAVA).
 *
 * The generated classes (pimoe, pimoeJNI, StatsSnapshotNative) are package-private plumbing in org.pimoe; the public
 * API is the hand-written layer in src/main/java/org/pimoe (Model, Options, Stats, PimoeException, ...), plus the
 * four enums generated from the C header (Status, Activation, ExpertPreset, OptionKey).
 *
 * Design:
 *   - Handles (pimoe_options *, pimoe_model *) cross as Java longs: no proxy object per call.
 *   - Every call returning pimoe_status throws org.pimoe.PimoeException(status, message) on failure. The message is
 *     read with pimoe_last_error() inside the same native call, on the same thread that failed.
 *   - float[] / int[] arguments of pimoe_forward and pimoe_tensor_read are pinned with
 *     Get/ReleasePrimitiveArrayCritical: taken in the `check` typemap (after every `in` typemap, which may still call
 *     JNI and throw), released in `freearg`; the exception is raised in `ret`, after the release. Nothing between
 *     (the C call) touches JNI.
 *   - pimoe_forward_direct is the same C function seen through a second prototype whose buffers are direct NIO
 *     buffers (GetDirectBufferAddress: the library reads and writes the buffers' own memory).
 */

%include <enums.swg>
%include <stdint.i>
%include <typemaps.i>
%javaconst(1);

/* ------------------------------------------------------------------------------------------- naming */
%rename("%(lowercamelcase)s", %$isfunction) "";
%rename("%(lowercamelcase)s", %$isvariable) "";
%rename("%(regex:/^PIMOE_(ERR_|ACT_|PRESET_|OPT_)?(.*)$/\\2/)s", %$isenumitem) "";
%rename(Status) pimoe_status;
%rename(Activation) pimoe_activation;
%rename(ExpertPreset) pimoe_expert_preset;
%rename(OptionKey) pimoe_option;
%rename(StatsSnapshotNative) pimoe_stats_snapshot;

%pragma(java) jniclassclassmodifiers = "final class"
%pragma(java) moduleclassmodifiers = "final class"
%pragma(java) jniclasscode = %{
  static {
    NativeLoader.load();
  }
%}

/* No finalize(): the hand-written classes own every native resource and free it in close(). */
%typemap(javafinalize) SWIGTYPE ""

/* Enums: a code() accessor besides SWIG's swigValue(). */
%typemap(javacode) enum SWIGTYPE %{
  /** The C library's numeric value of this constant (never renumbered). */
  public int code() {
    return swigValue;
  }
%}

/* uint64_t counters as Java long (they never reach 2^63). */
%apply long long { uint64_t };

/* ------------------------------------------------------------------------------------------- errors */
%{
#include <stdint.h>
#include <pimoe/pimoe.h>

/* Throws org.pimoe.PimoeException(status, pimoe_last_error()) on this thread. Must be called before any other
 * pimoe_* call on this thread after the failed one, and outside any JNI critical region. */
static void pimoe_java_throw(JNIEnv *jenv, pimoe_status status) {
  const char *message = pimoe_last_error();
  jclass cls;
  jmethodID ctor;
  jstring jmessage;
  jobject exception;
  if ((*jenv)->ExceptionCheck(jenv)) return;
  cls = (*jenv)->FindClass(jenv, "org/pimoe/PimoeException");
  if (!cls) return; /* NoClassDefFoundError is pending */
  ctor = (*jenv)->GetMethodID(jenv, cls, "<init>", "(ILjava/lang/String;)V");
  if (!ctor) return;
  jmessage = (*jenv)->NewStringUTF(jenv, message ? message : "");
  if (!jmessage) return;
  exception = (*jenv)->NewObject(jenv, cls, ctor, (jint)status, jmessage);
  if (exception) (*jenv)->Throw(jenv, (jthrowable)exception);
}
%}

/* A checked status: void in Java, throws on failure. Applied below per function (never to the enum itself). */
%typemap(jni) pimoe_status PIMOE_CHECKED "void"
%typemap(jtype) pimoe_status PIMOE_CHECKED "void"
%typemap(jstype) pimoe_status PIMOE_CHECKED "void"
%typemap(javaout) pimoe_status PIMOE_CHECKED { $jnicall; }
%typemap(out) pimoe_status PIMOE_CHECKED ""
%typemap(ret) pimoe_status PIMOE_CHECKED %{
  if ($1 != PIMOE_OK) pimoe_java_throw(jenv, $1);
%}

/* ------------------------------------------------------------------------------------------- handles */
%define PIMOE_JAVA_HANDLE(TYPE)
%typemap(jni) TYPE *, const TYPE * "jlong"
%typemap(jtype) TYPE *, const TYPE * "long"
%typemap(jstype) TYPE *, const TYPE * "long"
%typemap(javain) TYPE *, const TYPE * "$javainput"
%typemap(javaout) TYPE *, const TYPE * { return $jnicall; }
%typemap(in) TYPE *, const TYPE * %{ $1 = ($1_ltype)(intptr_t)$input; %}
%typemap(out) TYPE *, const TYPE * %{ $result = (jlong)(intptr_t)$1; %}
/* Creation: `TYPE **out` is a long[1] that receives the new handle (left untouched on failure). */
%typemap(jni) TYPE **out "jlongArray"
%typemap(jtype) TYPE **out "long[]"
%typemap(jstype) TYPE **out "long[]"
%typemap(javain) TYPE **out "$javainput"
%typemap(in) TYPE **out (TYPE *handle = NULL) %{
  if (!$input || (*jenv)->GetArrayLength(jenv, $input) < 1) {
    SWIG_JavaThrowException(jenv, SWIG_JavaIllegalArgumentException, "out handle array must have length 1");
    return $null;
  }
  $1 = &handle;
%}
%typemap(argout) TYPE **out %{
  if (handle$argnum) {
    jlong value = (jlong)(intptr_t)handle$argnum;
    (*jenv)->SetLongArrayRegion(jenv, $input, 0, 1, &value);
  }
%}
%enddef
PIMOE_JAVA_HANDLE(pimoe_options)
PIMOE_JAVA_HANDLE(pimoe_model)

/* ------------------------------------------------------------------------------------------- out-params */
%apply long long *OUTPUT { int64_t *hidden, int64_t *intermediate };
%apply int *OUTPUT { int32_t *num_experts, int32_t *top_k, int32_t *pre_norm, int32_t *ndim, int32_t *usable };
%apply int *OUTPUT { pimoe_activation *activation };

/* int64_t dims[4]: a long[] of length >= 4. */
%typemap(jni) int64_t dims[4] "jlongArray"
%typemap(jtype) int64_t dims[4] "long[]"
%typemap(jstype) int64_t dims[4] "long[]"
%typemap(javain) int64_t dims[4] "$javainput"
%typemap(in) int64_t dims[4] (int64_t dims_tmp[4]) %{
  if (!$input || (*jenv)->GetArrayLength(jenv, $input) < 4) {
    SWIG_JavaThrowException(jenv, SWIG_JavaIllegalArgumentException, "dims array must have length 4");
    return $null;
  }
  dims_tmp[0] = dims_tmp[1] = dims_tmp[2] = dims_tmp[3] = 0;
  $1 = dims_tmp;
%}
%typemap(argout) int64_t dims[4] %{
  {
    jlong values[4];
    int i;
    for (i = 0; i < 4; ++i) values[i] = (jlong)$1[i];
    (*jenv)->SetLongArrayRegion(jenv, $input, 0, 4, values);
  }
%}

/* (uint64_t *counts, size_t count): a long[] filled in place (copied back on release). */
%typemap(jni) (uint64_t *counts, size_t count) "jlongArray"
%typemap(jtype) (uint64_t *counts, size_t count) "long[]"
%typemap(jstype) (uint64_t *counts, size_t count) "long[]"
%typemap(javain) (uint64_t *counts, size_t count) "$javainput"
%typemap(in) (uint64_t *counts, size_t count) %{
  $1 = NULL;
  $2 = 0;
  if ($input) {
    $2 = (size_t)(*jenv)->GetArrayLength(jenv, $input);
    $1 = (uint64_t *)(*jenv)->GetLongArrayElements(jenv, $input, NULL);
    if (!$1) return $null;
  }
%}
%typemap(freearg) (uint64_t *counts, size_t count) %{
  if ($1) (*jenv)->ReleaseLongArrayElements(jenv, $input, (jlong *)$1, 0);
%}

/* ------------------------------------------------------------------------------------------- pinned arrays */
/* PIMOE_JAVA_CRITICAL(CTYPE, JNITYPE, JAVATYPE, PATTERN, RELEASE_MODE): a Java primitive array pinned with
 * GetPrimitiveArrayCritical. null passes NULL (the library reports it). The length is read in `in` (a JNI call, so
 * before any critical region); the pin is taken in `check` and dropped in `freearg`. A failed pin leaves NULL, which
 * the library reports as PIMOE_ERR_NULL_POINTER. */
%define PIMOE_JAVA_CRITICAL_WITH_COUNT(CTYPE, JNITYPE, JAVATYPE, PTR, COUNT, MODE)
%typemap(jni) (CTYPE *PTR, size_t COUNT) "JNITYPE"
%typemap(jtype) (CTYPE *PTR, size_t COUNT) "JAVATYPE"
%typemap(jstype) (CTYPE *PTR, size_t COUNT) "JAVATYPE"
%typemap(javain) (CTYPE *PTR, size_t COUNT) "$javainput"
%typemap(in) (CTYPE *PTR, size_t COUNT) %{
  $1 = NULL;
  $2 = $input ? (size_t)(*jenv)->GetArrayLength(jenv, $input) : 0;
%}
%typemap(check) (CTYPE *PTR, size_t COUNT) %{
  if ($input) $1 = ($1_ltype)(*jenv)->GetPrimitiveArrayCritical(jenv, $input, NULL);
%}
%typemap(freearg) (CTYPE *PTR, size_t COUNT) %{
  if ($1) (*jenv)->ReleasePrimitiveArrayCritical(jenv, $input, (void *)$1, MODE);
%}
%enddef
%define PIMOE_JAVA_CRITICAL(CTYPE, JNITYPE, JAVATYPE, PTR, MODE)
%typemap(jni) CTYPE *PTR "JNITYPE"
%typemap(jtype) CTYPE *PTR "JAVATYPE"
%typemap(jstype) CTYPE *PTR "JAVATYPE"
%typemap(javain) CTYPE *PTR "$javainput"
%typemap(in) CTYPE *PTR %{ $1 = NULL; %}
%typemap(check) CTYPE *PTR %{
  if ($input) $1 = ($1_ltype)(*jenv)->GetPrimitiveArrayCritical(jenv, $input, NULL);
%}
%typemap(freearg) CTYPE *PTR %{
  if ($1) (*jenv)->ReleasePrimitiveArrayCritical(jenv, $input, (void *)$1, MODE);
%}
%enddef

PIMOE_JAVA_CRITICAL_WITH_COUNT(const float, jfloatArray, float[], input, input_count, JNI_ABORT)
PIMOE_JAVA_CRITICAL_WITH_COUNT(float, jfloatArray, float[], output, output_count, 0)
PIMOE_JAVA_CRITICAL_WITH_COUNT(float, jfloatArray, float[], expert_weights, routing_count, 0)
PIMOE_JAVA_CRITICAL_WITH_COUNT(float, jfloatArray, float[], out, count, 0)
PIMOE_JAVA_CRITICAL(int32_t, jintArray, int[], expert_ids, 0)
/* pimoe_java_forward_routing (below): every routing array with its own length. */
PIMOE_JAVA_CRITICAL_WITH_COUNT(int32_t, jintArray, int[], routing_ids, ids_count, 0)
PIMOE_JAVA_CRITICAL_WITH_COUNT(float, jfloatArray, float[], routing_weights, weights_count, 0)
PIMOE_JAVA_CRITICAL_WITH_COUNT(uint8_t, jbyteArray, byte[], routing_dropped, dropped_count, 0)
PIMOE_JAVA_CRITICAL_WITH_COUNT(float, jfloatArray, float[], routing_probs, probs_count, 0)

/* ------------------------------------------------------------------------------------------- direct buffers */
/* A direct NIO buffer: its own memory goes to the library (no copy). The Java layer passes a buffer whose position
 * is 0 and whose capacity is the element count (it slices otherwise) and checks isDirect() and the byte order. A
 * non-direct buffer gives NULL, which the library reports. */
%define PIMOE_JAVA_DIRECT_WITH_COUNT(CTYPE, JAVATYPE, PTR, COUNT)
%typemap(jni) (CTYPE *PTR, size_t COUNT) "jobject"
%typemap(jtype) (CTYPE *PTR, size_t COUNT) "JAVATYPE"
%typemap(jstype) (CTYPE *PTR, size_t COUNT) "JAVATYPE"
%typemap(javain) (CTYPE *PTR, size_t COUNT) "$javainput"
%typemap(in) (CTYPE *PTR, size_t COUNT) %{
  $1 = $input ? ($1_ltype)(*jenv)->GetDirectBufferAddress(jenv, $input) : NULL;
  $2 = $1 ? (size_t)(*jenv)->GetDirectBufferCapacity(jenv, $input) : 0;
%}
%enddef
%define PIMOE_JAVA_DIRECT(CTYPE, JAVATYPE, PTR)
%typemap(jni) CTYPE *PTR "jobject"
%typemap(jtype) CTYPE *PTR "JAVATYPE"
%typemap(jstype) CTYPE *PTR "JAVATYPE"
%typemap(javain) CTYPE *PTR "$javainput"
%typemap(in) CTYPE *PTR %{
  $1 = $input ? ($1_ltype)(*jenv)->GetDirectBufferAddress(jenv, $input) : NULL;
%}
%enddef
PIMOE_JAVA_DIRECT_WITH_COUNT(const float, java.nio.FloatBuffer, direct_input, input_count)
PIMOE_JAVA_DIRECT_WITH_COUNT(float, java.nio.FloatBuffer, direct_output, output_count)
PIMOE_JAVA_DIRECT_WITH_COUNT(float, java.nio.FloatBuffer, direct_weights, routing_count)
PIMOE_JAVA_DIRECT(int32_t, java.nio.IntBuffer, direct_ids)
PIMOE_JAVA_DIRECT_WITH_COUNT(int32_t, java.nio.IntBuffer, direct_rids, rids_count)
PIMOE_JAVA_DIRECT_WITH_COUNT(float, java.nio.FloatBuffer, direct_rweights, rweights_count)
PIMOE_JAVA_DIRECT_WITH_COUNT(uint8_t, java.nio.ByteBuffer, direct_rdropped, rdropped_count)
PIMOE_JAVA_DIRECT_WITH_COUNT(float, java.nio.FloatBuffer, direct_rprobs, rprobs_count)

/* ------------------------------------------------------------------------------------------- stats struct */
/* pimoe_stats_snapshot: a package-private proxy, allocated with its struct_size set, freed by delete(). */
%typemap(javaclassmodifiers) pimoe_stats_snapshot "final class"
%immutable;
%extend pimoe_stats_snapshot {
  pimoe_stats_snapshot() {
    pimoe_stats_snapshot *s = (pimoe_stats_snapshot *)calloc(1, sizeof(pimoe_stats_snapshot));
    if (s) s->struct_size = (uint32_t)sizeof(pimoe_stats_snapshot);
    return s;
  }
  ~pimoe_stats_snapshot() {
    free($self);
  }
}

/* ------------------------------------------------------------------------------------------- functions */
%apply pimoe_status PIMOE_CHECKED {
  pimoe_status pimoe_options_create, pimoe_status pimoe_options_set_int, pimoe_status pimoe_options_set_float,
  pimoe_status pimoe_options_set_string, pimoe_status pimoe_options_set_by_name,
  pimoe_status pimoe_options_set_expert_preset, pimoe_status pimoe_options_set_expert_activation,
  pimoe_status pimoe_options_set_expert_width, pimoe_status pimoe_options_set_expert_pre_norm,
  pimoe_status pimoe_options_set_expert_weight_dtype, pimoe_status pimoe_create, pimoe_status pimoe_model_dims,
  pimoe_status pimoe_model_expert, pimoe_status pimoe_forward, pimoe_status pimoe_forward_direct, pimoe_status pimoe_stats,
  pimoe_status pimoe_stats_expert_loads, pimoe_status pimoe_stats_reset, pimoe_status pimoe_tensor_shape,
  pimoe_status pimoe_tensor_read, pimoe_status pimoe_backend_probe, pimoe_status pimoe_save, pimoe_status pimoe_load,
  pimoe_status pimoe_import_hf, pimoe_status pimoe_model_reset_adaptive_state, pimoe_status pimoe_java_forward_routing,
  pimoe_status pimoe_java_forward_routing_direct
};

/* pimoe_forward_routing goes through pimoe_java_forward_routing (below): its pimoe_routing struct becomes four
 * arrays (or direct buffers). Callback experts are not bound in Java (see README: the JNI upcall would have to run
 * inside the JNI critical regions that pin the float[] arguments). */
%ignore pimoe_routing;
%ignore pimoe_forward_routing;
%ignore pimoe_expert_fn;
%ignore pimoe_options_set_expert_callback;
%ignore pimoe_model_set_expert_callback;

%include "pimoe_headers.i"

%mutable;

/* The same C function as pimoe_forward, seen with direct buffers. */
%{
#define pimoe_forward_direct pimoe_forward
%}
pimoe_status pimoe_forward_direct(pimoe_model *model, const float *direct_input, size_t input_count, int64_t batch,
                                  int64_t seq, float *direct_output, size_t output_count, int32_t *direct_ids,
                                  float *direct_weights, size_t routing_count);

/* pimoe_forward_routing with the four routing outputs as separate arrays (each may be null: not wanted). The slot
 * count is the length of the first non-null one of ids, weights, dropped (the Java layer checks they agree). */
%{
#include <string.h>

static pimoe_status pimoe_java_forward_routing(pimoe_model *model, const float *input, size_t input_count,
                                               int64_t batch, int64_t seq, float *output, size_t output_count,
                                               int32_t *routing_ids, size_t ids_count, float *routing_weights,
                                               size_t weights_count, uint8_t *routing_dropped, size_t dropped_count,
                                               float *routing_probs, size_t probs_count) {
  pimoe_routing r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = routing_ids;
  r.weights = routing_weights;
  r.dropped = routing_dropped;
  r.slot_count = routing_ids ? ids_count : routing_weights ? weights_count : dropped_count;
  r.probabilities = routing_probs;
  r.probability_count = probs_count;
  return pimoe_forward_routing(model, input, input_count, batch, seq, output, output_count, &r);
}
#define pimoe_java_forward_routing_direct pimoe_java_forward_routing
%}
pimoe_status pimoe_java_forward_routing(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                        int64_t seq, float *output, size_t output_count, int32_t *routing_ids,
                                        size_t ids_count, float *routing_weights, size_t weights_count,
                                        uint8_t *routing_dropped, size_t dropped_count, float *routing_probs,
                                        size_t probs_count);
pimoe_status pimoe_java_forward_routing_direct(pimoe_model *model, const float *direct_input, size_t input_count,
                                               int64_t batch, int64_t seq, float *direct_output,
                                               size_t output_count, int32_t *direct_rids, size_t rids_count,
                                               float *direct_rweights, size_t rweights_count,
                                               uint8_t *direct_rdropped, size_t rdropped_count,
                                               float *direct_rprobs, size_t rprobs_count);
