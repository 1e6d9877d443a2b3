// SPDX-License-Identifier: MIT
// libpimoe: a header-only C++17 RAII wrapper over the C API in pimoe.h.
//
// Everything here is inline and lives on the caller's side of the ABI: the library itself only ever sees the C
// functions of pimoe.h, and no C++ exception crosses the boundary. Failures of the C API are turned into a
// pimoe::Error (a std::runtime_error) carrying the pimoe_status and the library's message.
//
//   #include <pimoe/pimoe.hpp>
//
//   pimoe::Model model(pimoe::Options().hidden(512).num_experts(8).top_k(2).backend("auto"));
//   std::vector<float> x(256 * 512, 0.5f);
//   std::vector<float> y = model.forward(x, /*batch=*/1, /*seq=*/256);
//   pimoe_stats_snapshot s = model.stats();
//
// Threading follows pimoe.h: a Model may be shared by several threads that call forward() / stats() concurrently
// (the Model object itself must outlive them, and must not be moved or destroyed while they run); an Options object
// belongs to one thread at a time.
#ifndef PIMOE_PIMOE_HPP
#define PIMOE_PIMOE_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pimoe.h"

namespace pimoe {
// The inline namespace keeps this wrapper's symbols (pimoe::cxx_v0::Model, ...) apart from libpimoe's own C++
// internals, which a static libpimoe.a exposes to the linker: users still write pimoe::Model.
inline namespace cxx_v0 {

// ------------------------------------------------------------------------------------------------------- errors

// A failed libpimoe call. what() reads "<status text>: <message>"; status() and message() give the two parts.
class Error : public std::runtime_error {
 public:
  Error(pimoe_status status, const std::string &message)
      : std::runtime_error(compose(status, message)), status_(status), message_(message) {}

  // The status code the C API returned.
  pimoe_status status() const noexcept { return status_; }
  // The library's message with context (pimoe_last_error() at the time of the failure); may be empty.
  const std::string &message() const noexcept { return message_; }

 private:
  static std::string compose(pimoe_status status, const std::string &message) {
    std::string text = pimoe_status_string(status);
    if (!message.empty()) {
      text += ": ";
      text += message;
    }
    return text;
  }

  pimoe_status status_;
  std::string message_;
};

namespace detail {

// Throws pimoe::Error for a failed status, with this thread's pimoe_last_error() (read before anything else can
// clear it).
inline void check(pimoe_status status) {
  if (status != PIMOE_OK) {
    const char *message = pimoe_last_error();
    throw Error(status, message != nullptr ? std::string(message) : std::string());
  }
}

inline std::string to_string_or_empty(const char *text) { return text != nullptr ? std::string(text) : std::string(); }

}  // namespace detail

// ------------------------------------------------------------------------------------------------ library info

// The library's version "MAJOR.MINOR.PATCH" (compare with PIMOE_VERSION_STRING, the headers' version).
inline std::string version() { return detail::to_string_or_empty(pimoe_version_string()); }
// The library's PIMOE_VERSION_NUMBER (major*10000 + minor*100 + patch).
inline std::uint32_t version_number() noexcept { return pimoe_version_number(); }
// The library's ABI major version (the N of libpimoe.so.N).
inline std::uint32_t abi_version() noexcept { return pimoe_abi_version(); }
// One line describing the build: compiled backends, BLAS, compiler.
inline std::string build_info() { return detail::to_string_or_empty(pimoe_build_info()); }
// Static English text of a status code.
inline std::string status_string(pimoe_status status) { return detail::to_string_or_empty(pimoe_status_string(status)); }

// Backends compiled into this build, in order of preference.
inline std::vector<std::string> backends() {
  std::vector<std::string> names;
  const std::int32_t count = pimoe_backend_count();
  for (std::int32_t i = 0; i < count; ++i) {
    const char *name = pimoe_backend_name(i);
    if (name != nullptr) names.emplace_back(name);
  }
  return names;
}

// Whether a backend ("cpu", "cuda", "vulkan", "vulkan:N", "auto") can run here. Throws for an unknown name.
inline bool backend_usable(const std::string &name) {
  std::int32_t usable = 0;
  detail::check(pimoe_backend_probe(name.c_str(), &usable));
  return usable != 0;
}

// Description of the device a backend would use here, or "" when the backend is unknown or unusable.
inline std::string backend_device(const std::string &name) {
  return detail::to_string_or_empty(pimoe_backend_device(name.c_str()));
}

// ------------------------------------------------------------------------------------------------------ options

// Layer options (see PIMOE_OPT_* in pimoe.h for every key, its type, range and default). Builder-style: every
// setter returns *this, and throws pimoe::Error at once for an unknown key or a bad value.
//
//   pimoe::Options opts;
//   opts.hidden(512).num_experts(8).top_k(2).activation(PIMOE_ACT_SWIGLU).backend("cpu");
//
// Move-only; the wrapped pimoe_options is destroyed with the object.
class Options {
 public:
  // Options holding every default of pimoe.h.
  Options() { detail::check(pimoe_options_create(&handle_)); }
  ~Options() { pimoe_options_destroy(handle_); }

  Options(const Options &) = delete;
  Options &operator=(const Options &) = delete;
  Options(Options &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Options &operator=(Options &&other) noexcept {
    if (this != &other) {
      pimoe_options_destroy(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }

  // ---- generic setters
  Options &set_int(pimoe_option key, std::int64_t value) {
    detail::check(pimoe_options_set_int(handle_, key, value));
    return *this;
  }
  Options &set_float(pimoe_option key, double value) {
    detail::check(pimoe_options_set_float(handle_, key, value));
    return *this;
  }
  Options &set_string(pimoe_option key, const std::string &value) {
    detail::check(pimoe_options_set_string(handle_, key, value.c_str()));
    return *this;
  }
  // Any layer-wide option by its quoted name, the value parsed from text: set("activation", "swiglu").
  Options &set(const std::string &key, const std::string &value) {
    detail::check(pimoe_options_set_by_name(handle_, key.c_str(), value.c_str()));
    return *this;
  }

  // ---- one setter per layer-wide key
  Options &hidden(std::int64_t value) { return set_int(PIMOE_OPT_HIDDEN, value); }
  Options &num_experts(std::int64_t value) { return set_int(PIMOE_OPT_NUM_EXPERTS, value); }
  Options &top_k(std::int64_t value) { return set_int(PIMOE_OPT_TOP_K, value); }
  Options &intermediate(std::int64_t value) { return set_int(PIMOE_OPT_INTERMEDIATE, value); }
  Options &activation(pimoe_activation value) { return set_int(PIMOE_OPT_ACTIVATION, static_cast<std::int64_t>(value)); }
  Options &pre_norm(bool enabled) { return set_int(PIMOE_OPT_PRE_NORM, enabled ? 1 : 0); }
  Options &expert_bias(bool enabled) { return set_int(PIMOE_OPT_EXPERT_BIAS, enabled ? 1 : 0); }
  Options &temperature(double value) { return set_float(PIMOE_OPT_TEMPERATURE, value); }
  Options &renormalize(bool enabled) { return set_int(PIMOE_OPT_RENORMALIZE, enabled ? 1 : 0); }
  Options &capacity_factor(double value) { return set_float(PIMOE_OPT_CAPACITY_FACTOR, value); }
  Options &aux_loss_coef(double value) { return set_float(PIMOE_OPT_AUX_LOSS_COEF, value); }
  Options &layer_norm_eps(double value) { return set_float(PIMOE_OPT_LAYER_NORM_EPS, value); }
  Options &seed(std::int64_t value) { return set_int(PIMOE_OPT_SEED, value); }
  Options &threads(std::int64_t value) { return set_int(PIMOE_OPT_THREADS, value); }
  Options &backend(const std::string &name) { return set_string(PIMOE_OPT_BACKEND, name); }

  // ---- per-expert overrides; expert is an index in [0, num_experts) or -1 for every expert
  Options &expert_preset(std::int32_t expert, pimoe_expert_preset preset) {
    detail::check(pimoe_options_set_expert_preset(handle_, expert, preset));
    return *this;
  }
  Options &expert_activation(std::int32_t expert, pimoe_activation activation) {
    detail::check(pimoe_options_set_expert_activation(handle_, expert, activation));
    return *this;
  }
  Options &expert_width(std::int32_t expert, std::int64_t intermediate) {
    detail::check(pimoe_options_set_expert_width(handle_, expert, intermediate));
    return *this;
  }
  Options &expert_pre_norm(std::int32_t expert, bool enabled) {
    detail::check(pimoe_options_set_expert_pre_norm(handle_, expert, enabled ? 1 : 0));
    return *this;
  }

  // The wrapped handle (still owned by this object), e.g. to pass to C code.
  pimoe_options *get() noexcept { return handle_; }
  const pimoe_options *get() const noexcept { return handle_; }
  // Gives up ownership: the caller must pimoe_options_destroy() the result.
  pimoe_options *release() noexcept { return std::exchange(handle_, nullptr); }

 private:
  pimoe_options *handle_ = nullptr;
};

// -------------------------------------------------------------------------------------------------------- model

// Layer dimensions and routing settings (pimoe_model_dims).
struct Dims {
  std::int64_t hidden = 0;
  std::int32_t num_experts = 0;
  std::int32_t top_k = 0;
};

// Resolved spec of one expert (pimoe_model_expert).
struct ExpertSpec {
  pimoe_activation activation = PIMOE_ACT_GELU;
  std::int64_t intermediate = 0;
  bool pre_norm = false;
};

// Shape of a weight tensor: its extents, outermost first (rank 1 or 2).
using Shape = std::vector<std::int64_t>;

// The result of Model::forward_routed(): the output, and per token t and slot j (index t*top_k + j) the chosen
// expert and the weight its output was combined with.
struct ForwardResult {
  std::vector<float> output;
  std::vector<std::int32_t> expert_ids;
  std::vector<float> expert_weights;
};

// A MoE layer (pimoe_model). Move-only with unique ownership: the handle is destroyed with the object. A
// moved-from Model is empty (operator bool is false); calling it throws pimoe::Error (PIMOE_ERR_NULL_POINTER).
class Model {
 public:
  // A model with every default of pimoe.h (hidden 512, 8 experts, top-2, backend "auto").
  Model() { detail::check(pimoe_create(nullptr, &handle_)); }
  // A model from options; the options may be destroyed or reused right after.
  explicit Model(const Options &options) { detail::check(pimoe_create(options.get(), &handle_)); }
  // Takes ownership of a handle made by pimoe_create() (may be NULL: an empty Model).
  explicit Model(pimoe_model *handle) noexcept : handle_(handle) {}
  ~Model() { pimoe_destroy(handle_); }

  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;
  Model(Model &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Model &operator=(Model &&other) noexcept {
    if (this != &other) {
      pimoe_destroy(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }

  explicit operator bool() const noexcept { return handle_ != nullptr; }
  pimoe_model *get() const noexcept { return handle_; }
  // Gives up ownership: the caller must pimoe_destroy() the result.
  pimoe_model *release() noexcept { return std::exchange(handle_, nullptr); }

  // ---- description
  Dims dims() const {
    Dims d;
    detail::check(pimoe_model_dims(handle_, &d.hidden, &d.num_experts, &d.top_k));
    return d;
  }
  std::int64_t hidden() const { return dims().hidden; }
  std::int32_t num_experts() const { return dims().num_experts; }
  std::int32_t top_k() const { return dims().top_k; }

  ExpertSpec expert(std::int32_t index) const {
    pimoe_activation activation = PIMOE_ACT_GELU;
    std::int64_t intermediate = 0;
    std::int32_t pre_norm = 0;
    detail::check(pimoe_model_expert(handle_, index, &activation, &intermediate, &pre_norm));
    ExpertSpec spec;
    spec.activation = activation;
    spec.intermediate = intermediate;
    spec.pre_norm = pre_norm != 0;
    return spec;
  }

  // Name of the backend this model runs on ("cpu", ...).
  std::string backend() const { return detail::to_string_or_empty(pimoe_model_backend(handle_)); }
  // The last failure recorded on this model from any thread, or "".
  std::string last_error() const { return detail::to_string_or_empty(pimoe_model_last_error(handle_)); }

  // ---- forward

  // Pointer + size form, exactly pimoe_forward(): input and output hold batch*seq*hidden floats; expert_ids and
  // expert_weights are both null or both hold routing_count == batch*seq*top_k elements.
  void forward(const float *input, std::size_t input_count, std::int64_t batch, std::int64_t seq, float *output,
               std::size_t output_count, std::int32_t *expert_ids = nullptr, float *expert_weights = nullptr,
               std::size_t routing_count = 0) {
    detail::check(pimoe_forward(handle_, input, input_count, batch, seq, output, output_count, expert_ids,
                                expert_weights, routing_count));
  }

  // Container form: output is resized to input.size() (which must be batch*seq*hidden).
  void forward(const std::vector<float> &input, std::int64_t batch, std::int64_t seq, std::vector<float> &output) {
    output.resize(input.size());
    forward(data_or_dummy(input), input.size(), batch, seq, data_or_dummy(output), output.size());
  }

  // Returns the output [batch, seq, hidden] as a new vector.
  std::vector<float> forward(const std::vector<float> &input, std::int64_t batch, std::int64_t seq) {
    std::vector<float> output;
    forward(input, batch, seq, output);
    return output;
  }

  // Also returns the routing decisions (batch*seq*top_k expert ids and combine weights).
  ForwardResult forward_routed(const std::vector<float> &input, std::int64_t batch, std::int64_t seq) {
    const std::size_t slots = routing_slots(batch, seq, static_cast<std::size_t>(top_k()));
    ForwardResult result;
    result.output.resize(input.size());
    result.expert_ids.resize(slots);
    result.expert_weights.resize(slots);
    forward(data_or_dummy(input), input.size(), batch, seq, data_or_dummy(result.output), result.output.size(),
            data_or_dummy(result.expert_ids), data_or_dummy(result.expert_weights), slots);
    return result;
  }

  // ---- statistics

  // A snapshot of every statistic (struct_size set to this header's sizeof(pimoe_stats_snapshot)).
  pimoe_stats_snapshot stats() const {
    pimoe_stats_snapshot snapshot{};
    snapshot.struct_size = static_cast<std::uint32_t>(sizeof(pimoe_stats_snapshot));
    detail::check(pimoe_stats(handle_, &snapshot));
    return snapshot;
  }

  // Per-expert loads ((token, expert) assignments computed), one entry per expert.
  std::vector<std::uint64_t> expert_loads() const {
    const std::int32_t experts = num_experts();
    std::vector<std::uint64_t> loads(experts > 0 ? static_cast<std::size_t>(experts) : 0u, 0u);
    std::uint64_t dummy = 0;
    detail::check(pimoe_stats_expert_loads(handle_, loads.empty() ? &dummy : loads.data(), loads.size()));
    return loads;
  }

  // Clears every statistic.
  void reset_stats() { detail::check(pimoe_stats_reset(handle_)); }

  // ---- weights

  // Names of the model's weight tensors, in the order of pimoe_tensor_count() / pimoe_tensor_name().
  std::vector<std::string> tensor_names() const {
    std::vector<std::string> names;
    const std::int64_t count = pimoe_tensor_count(handle_);
    if (count > 0) names.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      const char *name = pimoe_tensor_name(handle_, i);
      if (name != nullptr) names.emplace_back(name);
    }
    return names;
  }

  Shape tensor_shape(const std::string &name) const {
    std::int32_t ndim = 0;
    std::int64_t dims[4] = {0, 0, 0, 0};
    detail::check(pimoe_tensor_shape(handle_, name.c_str(), &ndim, dims));
    if (ndim < 0) ndim = 0;
    if (ndim > 4) ndim = 4;
    return Shape(dims, dims + ndim);
  }

  // A copy of a tensor's values (row-major fp32).
  std::vector<float> tensor(const std::string &name) const {
    const Shape shape = tensor_shape(name);
    std::size_t count = 1;
    for (std::int64_t extent : shape) count *= static_cast<std::size_t>(extent);
    std::vector<float> values(count);
    detail::check(pimoe_tensor_read(handle_, name.c_str(), data_or_dummy(values), values.size()));
    return values;
  }

 private:
  // An empty vector's data() may be null; give the C API a valid pointer so that it reports the size, not a NULL.
  template <typename T>
  static T *data_or_dummy(std::vector<T> &v) noexcept {
    static thread_local T dummy{};
    return v.empty() ? &dummy : v.data();
  }
  template <typename T>
  static const T *data_or_dummy(const std::vector<T> &v) noexcept {
    static thread_local T dummy{};
    return v.empty() ? &dummy : v.data();
  }

  // batch*seq*top_k, or an Error for negative or overflowing sizes (checked here, before allocating).
  static std::size_t routing_slots(std::int64_t batch, std::int64_t seq, std::size_t k) {
    const std::size_t max = std::numeric_limits<std::size_t>::max();
    if (batch < 0 || seq < 0) {
      throw Error(PIMOE_ERR_INVALID_ARGUMENT, "batch (" + std::to_string(batch) + ") and seq (" + std::to_string(seq) +
                                                  ") must not be negative");
    }
    const std::size_t b = static_cast<std::size_t>(batch), s = static_cast<std::size_t>(seq);
    if ((s != 0 && b > max / s) || (k != 0 && b * s > max / k)) {
      throw Error(PIMOE_ERR_INVALID_ARGUMENT, "batch (" + std::to_string(batch) + ") x seq (" + std::to_string(seq) +
                                                  ") x top_k is too large");
    }
    return b * s * k;
  }

  pimoe_model *handle_ = nullptr;
};

}  // namespace cxx_v0
}  // namespace pimoe

#endif  // PIMOE_PIMOE_HPP
