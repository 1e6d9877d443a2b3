// SPDX-License-Identifier: MIT
/* The C# part of libpimoe's SWIG interface (included by ../pimoe.i under SWIGCSHARP).
 *
 * SWIG generates the P/Invoke layer only: an internal module class `pimoe` (PascalCase static methods, one per C
 * function), the internal `pimoePINVOKE` class and the public enums Status, Activation, ExpertPreset and OptionKey.
 * The public API (Model, Options, Stats, Library, PimoeException) is hand-written in src/*.cs on top of it.
 *
 * Mapping rules:
 *   - handles are SafeHandles (ModelHandle, OptionsHandle): the P/Invoke marshaller AddRefs them around each call, so
 *     Dispose() cannot free a model while a call on it runs, and a call after Dispose() throws ObjectDisposedException;
 *   - buffers are IntPtr: the hand-written layer pins managed arrays with `fixed` and passes their address (no copy);
 *   - size_t is ulong, int64_t long, int32_t int, uint64_t ulong;
 *   - every call returning pimoe_status is void in C#: on failure the C wrapper reads pimoe_last_error() in the same
 *     native call, on the same thread, and hands (status, message) to a registered managed callback that sets a
 *     pending PimoeException; the generated C# method throws it right after the P/Invoke returns. */

%include <stdint.i>

/* ------------------------------------------------------------------ the pending-exception callback (C side) */
%insert(runtime) %{
#include <pimoe/pimoe.h>

typedef void (SWIGSTDCALL *pimoe_csharp_exception_callback_t)(int status, const char *message);
static pimoe_csharp_exception_callback_t pimoe_csharp_exception_callback = 0;

#ifdef __cplusplus
extern "C"
#endif
SWIGEXPORT void SWIGSTDCALL PimoeCSharp_RegisterExceptionCallback(pimoe_csharp_exception_callback_t callback) {
  pimoe_csharp_exception_callback = callback;
}

static void pimoe_csharp_raise(int status) {
  const char *message = pimoe_last_error(); /* same thread, same native call: the failed call's own message */
  if (pimoe_csharp_exception_callback) pimoe_csharp_exception_callback(status, message ? message : "");
}
%}

/* ------------------------------------------------------------------ the pending-exception callback (C# side) */
%pragma(csharp) imclasscode=%{
  internal delegate void PimoeExceptionDelegate(int status, string message);

  [global::System.Runtime.InteropServices.DllImport("$dllimport", EntryPoint="PimoeCSharp_RegisterExceptionCallback")]
  private static extern void PimoeCSharp_RegisterExceptionCallback(PimoeExceptionDelegate callback);

  private sealed class PimoeExceptionHelper {
    // Kept alive for the life of the process: native code holds a pointer to it.
    internal static readonly PimoeExceptionDelegate Callback = new PimoeExceptionDelegate(SetPending);

    private static void SetPending(int status, string message) {
      SWIGPendingException.Set(new PimoeException((Status)status, message));
    }

    internal PimoeExceptionHelper() {
      PimoeCSharp_RegisterExceptionCallback(Callback);
    }
  }

  private static readonly PimoeExceptionHelper pimoeExceptionHelper = new PimoeExceptionHelper();

  internal static void EnsureInitialized() {
    global::System.GC.KeepAlive(pimoeExceptionHelper);
  }
%}

/* Nothing generated here is public API except the enums. */
%pragma(csharp) moduleclassmodifiers="internal class"
%typemap(csclassmodifiers) SWIGTYPE "internal class"

/* ------------------------------------------------------------------ scalar types */
%apply unsigned long long { size_t };

/* ------------------------------------------------------------------ status: void in C#, failures throw */
%typemap(ctype) pimoe_status PIMOE_CHECKED "int"
%typemap(imtype) pimoe_status PIMOE_CHECKED "int"
%typemap(cstype) pimoe_status PIMOE_CHECKED "void"
%typemap(out, canthrow=1) pimoe_status PIMOE_CHECKED %{
  $result = (int)$1;
  if ($1 != PIMOE_OK) pimoe_csharp_raise((int)$1);
%}
%typemap(csout, excode=SWIGEXCODE) pimoe_status PIMOE_CHECKED {
    $imcall;$excode
  }

%apply pimoe_status PIMOE_CHECKED {
  pimoe_status pimoe_options_create, pimoe_status pimoe_options_set_int, pimoe_status pimoe_options_set_float,
  pimoe_status pimoe_options_set_string, pimoe_status pimoe_options_set_by_name,
  pimoe_status pimoe_options_set_expert_preset, pimoe_status pimoe_options_set_expert_activation,
  pimoe_status pimoe_options_set_expert_width, pimoe_status pimoe_options_set_expert_pre_norm,
  pimoe_status pimoe_options_set_expert_weight_dtype, pimoe_status pimoe_create, pimoe_status pimoe_model_dims, pimoe_status pimoe_model_expert,
  pimoe_status pimoe_forward, pimoe_status pimoe_stats, pimoe_status pimoe_stats_expert_loads,
  pimoe_status pimoe_stats_reset, pimoe_status pimoe_tensor_shape, pimoe_status pimoe_tensor_read,
  pimoe_status pimoe_backend_probe, pimoe_status pimoe_save, pimoe_status pimoe_load,
  pimoe_status pimoe_import_hf, pimoe_status pimoe_model_reset_adaptive_state,
  pimoe_status pimoe_csharp_forward_routing,
  pimoe_status pimoe_options_set_expert_callback, pimoe_status pimoe_model_set_expert_callback
};

/* ------------------------------------------------------------------ handles as SafeHandles */
%define PIMOE_HANDLE(CTYPE, CSTYPE)
%typemap(ctype) CTYPE *, const CTYPE * "void *"
%typemap(imtype) CTYPE *, const CTYPE * "CSTYPE"
%typemap(cstype) CTYPE *, const CTYPE * "CSTYPE"
%typemap(csin) CTYPE *, const CTYPE * "$csinput"
%typemap(in) CTYPE *, const CTYPE * %{ $1 = ($1_ltype)$input; %}
/* pimoe_*_create(..., CTYPE **out): the marshaller stores the new pointer into a fresh SafeHandle. */
%typemap(ctype) CTYPE **out "void **"
%typemap(imtype) CTYPE **out "out CSTYPE"
%typemap(cstype) CTYPE **out "out CSTYPE"
%typemap(csin) CTYPE **out "out $csinput"
%typemap(in) CTYPE **out %{ $1 = ($1_ltype)$input; %}
%enddef
PIMOE_HANDLE(pimoe_model, ModelHandle)
PIMOE_HANDLE(pimoe_options, OptionsHandle)

/* SafeHandle.ReleaseHandle() calls these with the raw pointer. */
%typemap(ctype) void *raw_handle "void *"
%typemap(imtype) void *raw_handle "global::System.IntPtr"
%typemap(cstype) void *raw_handle "global::System.IntPtr"
%typemap(csin) void *raw_handle "$csinput"
%typemap(in) void *raw_handle %{ $1 = $input; %}

/* ------------------------------------------------------------------ buffers as IntPtr (pinned by the caller) */
%define PIMOE_BUFFER(DECL)
%typemap(ctype) DECL "void *"
%typemap(imtype) DECL "global::System.IntPtr"
%typemap(cstype) DECL "global::System.IntPtr"
%typemap(csin) DECL "$csinput"
%typemap(in) DECL %{ $1 = ($1_ltype)$input; %}
%enddef
PIMOE_BUFFER(const float *input)
PIMOE_BUFFER(float *output)
PIMOE_BUFFER(int32_t *expert_ids)
PIMOE_BUFFER(float *expert_weights)
PIMOE_BUFFER(uint64_t *counts)
PIMOE_BUFFER(float *out)
PIMOE_BUFFER(int64_t dims[4])
PIMOE_BUFFER(int32_t *routing_ids)
PIMOE_BUFFER(float *routing_weights)
PIMOE_BUFFER(uint8_t *routing_dropped)
PIMOE_BUFFER(float *routing_probs)
/* Callback experts: the function pointer comes from Marshal.GetFunctionPointerForDelegate (src/Callbacks.cs); the
 * delegate is kept alive by the Options and by every Model that may call it. user_data is unused (IntPtr.Zero). */
PIMOE_BUFFER(void *user_data)
%typemap(ctype) pimoe_expert_fn fn "void *"
%typemap(imtype) pimoe_expert_fn fn "global::System.IntPtr"
%typemap(cstype) pimoe_expert_fn fn "global::System.IntPtr"
%typemap(csin) pimoe_expert_fn fn "$csinput"
%typemap(in) pimoe_expert_fn fn %{ $1 = (pimoe_expert_fn)$input; %}

/* ------------------------------------------------------------------ scalar out-parameters as `out T` */
%define PIMOE_OUT(CTYPE, CSTYPE, NAME)
%typemap(ctype) CTYPE *NAME "CTYPE *"
%typemap(imtype) CTYPE *NAME "out CSTYPE"
%typemap(cstype) CTYPE *NAME "out CSTYPE"
%typemap(csin) CTYPE *NAME "out $csinput"
%typemap(in) CTYPE *NAME %{ $1 = ($1_ltype)$input; %}
%enddef
PIMOE_OUT(int64_t, long, hidden)
PIMOE_OUT(int32_t, int, num_experts)
PIMOE_OUT(int32_t, int, top_k)
PIMOE_OUT(pimoe_activation, ActivationFunction, activation)
PIMOE_OUT(int64_t, long, intermediate)
PIMOE_OUT(int32_t, int, pre_norm)
PIMOE_OUT(int32_t, int, ndim)
PIMOE_OUT(int32_t, int, usable)

/* The stats snapshot is the blittable value type Stats (src/Stats.cs), passed by reference (pinned, no copy). */
%ignore pimoe_stats_snapshot;
%typemap(ctype) pimoe_stats_snapshot *out "pimoe_stats_snapshot *"
%typemap(imtype) pimoe_stats_snapshot *out "ref Stats"
%typemap(cstype) pimoe_stats_snapshot *out "ref Stats"
%typemap(csin) pimoe_stats_snapshot *out "ref $csinput"
%typemap(in) pimoe_stats_snapshot *out %{ $1 = $input; %}

/* ------------------------------------------------------------------ names */
%rename(Status) pimoe_status;
%rename(ActivationFunction) pimoe_activation;
%rename(ExpertPreset) pimoe_expert_preset;
%rename(OptionKey) pimoe_option;

%rename(Ok) PIMOE_OK;
%rename(NullPointer) PIMOE_ERR_NULL_POINTER;
%rename(InvalidArgument) PIMOE_ERR_INVALID_ARGUMENT;
%rename(SizeMismatch) PIMOE_ERR_SIZE_MISMATCH;
%rename(UnknownOption) PIMOE_ERR_UNKNOWN_OPTION;
%rename(InvalidOption) PIMOE_ERR_INVALID_OPTION;
%rename(NonFiniteInput) PIMOE_ERR_NON_FINITE_INPUT;
%rename(BackendUnavailable) PIMOE_ERR_BACKEND_UNAVAILABLE;
%rename(OutOfMemory) PIMOE_ERR_OUT_OF_MEMORY;
%rename(NotFound) PIMOE_ERR_NOT_FOUND;
%rename(IO) PIMOE_ERR_IO;
%rename(Format) PIMOE_ERR_FORMAT;
%rename(Unsupported) PIMOE_ERR_UNSUPPORTED;
%rename(Internal) PIMOE_ERR_INTERNAL;
%rename(Callback) PIMOE_ERR_CALLBACK;

%rename(Gelu) PIMOE_ACT_GELU;
%rename(GeluTanh) PIMOE_ACT_GELU_TANH;
%rename(Silu) PIMOE_ACT_SILU;
%rename(Relu) PIMOE_ACT_RELU;
%rename(Tanh) PIMOE_ACT_TANH;
%rename(SwiGlu) PIMOE_ACT_SWIGLU;
%rename(SwiGluOai) PIMOE_ACT_SWIGLU_OAI;

%rename(Generic) PIMOE_PRESET_GENERIC;
%rename(Reasoning) PIMOE_PRESET_REASONING;
%rename(Computation) PIMOE_PRESET_COMPUTATION;
%rename(Mathematical) PIMOE_PRESET_MATHEMATICAL;
%rename(Logical) PIMOE_PRESET_LOGICAL;
%rename(Language) PIMOE_PRESET_LANGUAGE;
%rename(Creative) PIMOE_PRESET_CREATIVE;
%rename(Analytical) PIMOE_PRESET_ANALYTICAL;

%rename(Hidden) PIMOE_OPT_HIDDEN;
%rename(NumExperts) PIMOE_OPT_NUM_EXPERTS;
%rename(TopK) PIMOE_OPT_TOP_K;
%rename(Intermediate) PIMOE_OPT_INTERMEDIATE;
%rename(Activation) PIMOE_OPT_ACTIVATION;
%rename(PreNorm) PIMOE_OPT_PRE_NORM;
%rename(ExpertBias) PIMOE_OPT_EXPERT_BIAS;
%rename(Temperature) PIMOE_OPT_TEMPERATURE;
%rename(Renormalize) PIMOE_OPT_RENORMALIZE;
%rename(CapacityFactor) PIMOE_OPT_CAPACITY_FACTOR;
%rename(AuxLossCoef) PIMOE_OPT_AUX_LOSS_COEF;
%rename(LayerNormEps) PIMOE_OPT_LAYER_NORM_EPS;
%rename(Seed) PIMOE_OPT_SEED;
%rename(Threads) PIMOE_OPT_THREADS;
%rename(Backend) PIMOE_OPT_BACKEND;
%rename(Deterministic) PIMOE_OPT_DETERMINISTIC;
%rename(CpuGemm) PIMOE_OPT_CPU_GEMM;
%rename(RouterScoring) PIMOE_OPT_ROUTER_SCORING;
%rename(RouterBias) PIMOE_OPT_ROUTER_BIAS;
%rename(RoutedScaling) PIMOE_OPT_ROUTED_SCALING;
%rename(NumGroups) PIMOE_OPT_NUM_GROUPS;
%rename(TopKGroups) PIMOE_OPT_TOPK_GROUPS;
%rename(GroupScore) PIMOE_OPT_GROUP_SCORE;
%rename(SharedWidth) PIMOE_OPT_SHARED_WIDTH;
%rename(SharedGate) PIMOE_OPT_SHARED_GATE;
%rename(WeightDtype) PIMOE_OPT_WEIGHT_DTYPE;
%rename(RoutingMode) PIMOE_OPT_ROUTING_MODE;
%rename(GroupLevels) PIMOE_OPT_GROUP_LEVELS;
%rename(AttentionHeads) PIMOE_OPT_ATTENTION_HEADS;
%rename(AttentionHeadDim) PIMOE_OPT_ATTENTION_HEAD_DIM;
%rename(AttentionCausal) PIMOE_OPT_ATTENTION_CAUSAL;
%rename(AdaptiveBiasRate) PIMOE_OPT_ADAPTIVE_BIAS_RATE;
%rename(DynamicCapacity) PIMOE_OPT_DYNAMIC_CAPACITY;
%rename(CapacityMomentum) PIMOE_OPT_CAPACITY_MOMENTUM;
%rename(CombineAttentionDim) PIMOE_OPT_COMBINE_ATTENTION_DIM;
%rename(WeightGroupSize) PIMOE_OPT_WEIGHT_GROUP_SIZE;
%rename(WeightZeroPoint) PIMOE_OPT_WEIGHT_ZERO_POINT;
%rename(RouterLogitBias) PIMOE_OPT_ROUTER_LOGIT_BIAS;
%rename(SwigluAlpha) PIMOE_OPT_SWIGLU_ALPHA;
%rename(SwigluLimit) PIMOE_OPT_SWIGLU_LIMIT;
%rename(ActivationDtype) PIMOE_OPT_ACTIVATION_DTYPE;
%rename(ExpertInputScaling) PIMOE_OPT_EXPERT_INPUT_SCALING;
%rename(SparsemixerEps) PIMOE_OPT_SPARSEMIXER_EPS;
/* Experimental keys (pimoe.h: may change or disappear in any release), set through Set(OptionKey, ...) or by name. */
%rename(ExperimentalCudaNoWgmma) PIMOE_OPT_EXPERIMENTAL_CUDA_NO_WGMMA;
%rename(ExperimentalCudaStreamTokens) PIMOE_OPT_EXPERIMENTAL_CUDA_STREAM_TOKENS;
%rename(ExperimentalCudaDecodeGemmRows) PIMOE_OPT_EXPERIMENTAL_CUDA_DECODE_GEMM_ROWS;
%rename(ExperimentalVulkanCoopmatN) PIMOE_OPT_EXPERIMENTAL_VULKAN_COOPMAT_N;
%rename(ExperimentalVulkanValidation) PIMOE_OPT_EXPERIMENTAL_VULKAN_VALIDATION;
%rename(ExperimentalVulkanRouting) PIMOE_OPT_EXPERIMENTAL_VULKAN_ROUTING;
%rename(ExperimentalVulkanTiles) PIMOE_OPT_EXPERIMENTAL_VULKAN_TILES;
%rename(ExperimentalVulkanProfile) PIMOE_OPT_EXPERIMENTAL_VULKAN_PROFILE;

%rename(HeaderVersionMajor) PIMOE_VERSION_MAJOR;
%rename(HeaderVersionMinor) PIMOE_VERSION_MINOR;
%rename(HeaderVersionPatch) PIMOE_VERSION_PATCH;
%rename(HeaderVersionNumber) PIMOE_VERSION_NUMBER;
%rename(HeaderVersionString) PIMOE_VERSION_STRING;
%rename(HeaderAbiVersion) PIMOE_ABI_VERSION;

/* Functions: pimoe_foo_bar -> PimoeFooBar (internal names; the public API is hand-written). */
%rename("%(camelcase)s", %$isfunction) "";

/* Handles are released through the raw-pointer helpers below (SafeHandle.ReleaseHandle gets an IntPtr). */
%ignore pimoe_destroy;
%ignore pimoe_options_destroy;
%inline %{
static void pimoe_csharp_destroy_model(void *raw_handle) { pimoe_destroy((pimoe_model *)raw_handle); }
static void pimoe_csharp_destroy_options(void *raw_handle) { pimoe_options_destroy((pimoe_options *)raw_handle); }
%}

/* Why a backend is unusable, read in the same native call as the probe (NULL when usable or unknown). */
%inline %{
static const char *pimoe_csharp_backend_unusable_reason(const char *name) {
  int32_t usable = 0;
  if (pimoe_backend_probe(name, &usable) != PIMOE_OK || usable) return 0;
  return pimoe_last_error();
}
%}

/* pimoe_forward_routing with its pimoe_routing struct flattened into buffers (each may be IntPtr.Zero). */
%ignore pimoe_routing;
%ignore pimoe_forward_routing;
%ignore pimoe_expert_fn;
%inline %{
static pimoe_status pimoe_csharp_forward_routing(pimoe_model *model, const float *input, size_t input_count,
                                                 int64_t batch, int64_t seq, float *output, size_t output_count,
                                                 int32_t *routing_ids, float *routing_weights,
                                                 uint8_t *routing_dropped, size_t slot_count, float *routing_probs,
                                                 size_t probability_count) {
  pimoe_routing r;
  r.struct_size = sizeof r;
  r.expert_ids = routing_ids;
  r.weights = routing_weights;
  r.dropped = routing_dropped;
  r.slot_count = slot_count;
  r.probabilities = routing_probs;
  r.probability_count = probability_count;
  return pimoe_forward_routing(model, input, input_count, batch, seq, output, output_count, &r);
}
%}

%include "pimoe_headers.i"
