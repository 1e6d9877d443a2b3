# SPDX-License-Identifier: MIT
"""pimoe.Model: one Mixture-of-Experts layer (pimoe_model), with its results types."""
import dataclasses
import os
import threading

import numpy as np

from . import cpimoe
from ._arrays import checked
from ._errors import Error, Status
from ._options import Activation, Options, native_options


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of a model's statistics (pimoe_stats_snapshot; pimoe_stats.h defines every field)."""

    num_experts: int
    forward_calls: int
    tokens: int
    dropped_tokens: int
    latency_last_ms: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    tokens_per_second: float
    weight_bytes: int
    workspace_bytes: int
    expert_utilization: float
    load_cv: float
    load_max_violation: float
    load_jain_index: float
    load_normalized_entropy: float
    routing_confidence: float
    aux_loss: float
    z_loss: float
    weight_quant_rel_rms_error: float
    weight_quant_max_abs_error: float


@dataclasses.dataclass(frozen=True)
class ExpertSpec:
    """One expert's resolved settings (pimoe_model_expert): a callback expert reports intermediate 0."""

    activation: Activation
    intermediate: int
    pre_norm: bool


@dataclasses.dataclass(frozen=True)
class Routing:
    """The output and full routing of one forward_routing call, T tokens and S = routing_slots per token:
    expert_ids [T, S] int32 (-1 for an unused expert-choice slot), weights [T, S] float32 (0 when dropped or
    unused), dropped [T, S] bool (dropped by the capacity limit), probabilities [T, E] float32 (the router's scores
    before any bias)."""

    output: object
    expert_ids: np.ndarray
    weights: np.ndarray
    dropped: np.ndarray
    probabilities: np.ndarray


def _shape_of(view, hidden):
    """(batch, seq) of an input of shape [batch, seq, hidden], [seq, hidden] (one sequence) or [hidden] (one
    token)."""
    if view.ndim == 3:
        batch, seq = view.shape[0], view.shape[1]
    elif view.ndim == 2:
        batch, seq = 1, view.shape[0]
    elif view.ndim == 1:
        batch, seq = 1, 1
    else:
        raise ValueError(f"input: {view.ndim} dimensions, expected [batch, seq, hidden], [seq, hidden] or [hidden]")
    if view.shape[-1] != hidden:
        raise ValueError(f"input: last dimension {view.shape[-1]}, expected the model's hidden size {hidden}")
    if batch == 0 or seq == 0:
        raise ValueError(f"input: shape {view.shape} holds no token")
    return batch, seq


class Model:
    """A Mixture-of-Experts layer (pimoe_model).

    Make one with ``Model(options)`` (or keyword options: ``Model(hidden=64, num_experts=8)``), ``Model.load(path)``
    or ``Model.import_hf(folder, layer)``; free it with :meth:`close` or a ``with`` block (a model never closed is
    freed when collected).

    Threads: any number of threads may call forward on one model at once (the GIL is released during the C call).
    close() waits for the calls in flight to finish; every call after it raises :class:`pimoe.Error` with
    Status.NULL_POINTER ("model is closed").

    Tensors are float32, C-contiguous, shape [batch, seq, hidden] (or [seq, hidden], [hidden]): NumPy arrays, or
    anything exposing DLPack or __array_interface__ (a PyTorch CPU tensor). The library reads and writes the
    caller's memory: nothing is copied or converted.
    """

    def __init__(self, options=None, **settings):
        if settings:
            if options is not None:
                raise TypeError("Model: pass options or keyword settings, not both")
            options = Options(**settings)
        with native_options(options) as opts:
            handle = cpimoe.pimoe_create(opts)
        self._adopt(handle)

    @classmethod
    def _from_handle(cls, handle):
        model = cls.__new__(cls)
        model._adopt(handle)
        return model

    def _adopt(self, handle):
        self._handle = None
        self._lock = threading.Condition()
        self._calls = 0
        try:
            self._hidden, self._num_experts, self._top_k = cpimoe.pimoe_model_dims(handle)
            self._slots = cpimoe.pimoe_model_routing_slots(handle)
        except BaseException:
            cpimoe.pimoe_destroy(handle)
            raise
        self._handle = handle

    @classmethod
    def load(cls, path, options=None):
        """A model from a file written by :meth:`save` (libpimoe's safetensors format). The layer comes from the file;
        only the runtime settings of `options` are used (backend, threads, deterministic, cpu_gemm, weight_dtype)."""
        with native_options(options) as opts:
            return cls._from_handle(cpimoe.pimoe_load(os.fspath(path), opts))

    @classmethod
    def import_hf(cls, checkpoint_dir, layer, options=None):
        """The MoE block of decoder layer `layer` of a Hugging Face checkpoint folder (config.json and
        model.safetensors or a sharded index; pimoe_import_hf in pimoe_model.h lists the families). Only the runtime
        settings of `options` are used."""
        with native_options(options) as opts:
            return cls._from_handle(cpimoe.pimoe_import_hf(os.fspath(checkpoint_dir), int(layer), opts))

    # ---------------------------------------------------------------- lifetime
    def _acquire(self):
        with self._lock:
            if self._handle is None:
                raise Error(Status.NULL_POINTER, "model is closed")
            self._calls += 1
            return self._handle

    def _release(self):
        with self._lock:
            self._calls -= 1
            if self._calls == 0:
                self._lock.notify_all()

    def close(self):
        """Frees the model, after the calls in flight on other threads finish. Closing twice is harmless."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # construction failed before the handle existed
            return
        with lock:
            # Refuse new calls first, then wait for those in flight (waiting for a moment with no call running
            # could wait forever while other threads keep calling).
            handle, self._handle = self._handle, None
            while self._calls > 0:
                lock.wait()
        if handle is not None:
            cpimoe.pimoe_destroy(handle)

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _call(self, fn, *args):
        handle = self._acquire()
        try:
            return fn(handle, *args)
        finally:
            self._release()

    # ---------------------------------------------------------------- shape
    @property
    def hidden(self):
        return self._hidden

    @property
    def num_experts(self):
        return self._num_experts

    @property
    def top_k(self):
        return self._top_k

    @property
    def routing_slots(self):
        """Routing slots per token: top_k, or num_experts with expert-choice routing."""
        return self._slots

    @property
    def backend(self):
        return self._call(cpimoe.pimoe_model_backend)

    def expert(self, expert):
        activation, intermediate, pre_norm = self._call(cpimoe.pimoe_model_expert, int(expert))
        return ExpertSpec(Activation(activation), intermediate, bool(pre_norm))

    @property
    def last_error(self):
        """The last failure recorded on this model from any thread, or ""."""
        return self._call(cpimoe.pimoe_model_last_error)

    def __repr__(self):
        state = "closed" if self.closed else f"backend={self.backend!r}"
        return (f"pimoe.Model(hidden={self._hidden}, num_experts={self._num_experts}, top_k={self._top_k}, "
                f"{state})")

    # ---------------------------------------------------------------- forward
    def _input_and_output(self, x, out):
        view = checked(x, "input", np.float32)
        batch, seq = _shape_of(view, self._hidden)
        if out is None:
            result = np.empty(view.shape, dtype=np.float32)
            out_view = result
        else:
            result = out
            out_view = checked(out, "out", np.float32, writable=True, shape=view.shape)
        return view, batch, seq, out_view, result

    def forward(self, x, out=None):
        """Runs the layer on x; returns the output: `out` itself when given (written in place, same shape as x), else
        a new float32 ndarray of x's shape."""
        view, batch, seq, out_view, result = self._input_and_output(x, out)
        self._call(cpimoe.pimoe_py_forward, view, batch, seq, out_view, None, None)
        return result

    def forward_routing(self, x, out=None):
        """forward, plus the full routing of the call (:class:`Routing`)."""
        view, batch, seq, out_view, result = self._input_and_output(x, out)
        tokens = batch * seq
        ids = np.empty((tokens, self._slots), dtype=np.int32)
        weights = np.empty((tokens, self._slots), dtype=np.float32)
        dropped = np.empty((tokens, self._slots), dtype=np.uint8)
        probabilities = np.empty((tokens, self._num_experts), dtype=np.float32)
        self._call(cpimoe.pimoe_py_forward_routing, view, batch, seq, out_view, ids, weights, dropped, probabilities)
        return Routing(result, ids, weights, dropped.view(np.bool_), probabilities)

    def reset_adaptive_state(self):
        """Restores the adaptive routing state (selection bias, load average) to its value at creation or load."""
        self._call(cpimoe.pimoe_model_reset_adaptive_state)

    # ---------------------------------------------------------------- statistics
    def stats(self):
        snapshot = self._call(cpimoe.pimoe_stats)
        return Stats(**{f.name: getattr(snapshot, f.name) for f in dataclasses.fields(Stats)})

    def expert_loads(self):
        """(token, expert) assignments computed per expert since creation or the last reset, uint64 [num_experts]."""
        counts = np.zeros(self._num_experts, dtype=np.uint64)
        self._call(cpimoe.pimoe_py_stats_expert_loads, counts)
        return counts

    def reset_stats(self):
        self._call(cpimoe.pimoe_stats_reset)

    # ---------------------------------------------------------------- tensors and files
    def tensor_names(self):
        """The model's tensors, in the order of pimoe_tensor_count (the names save writes)."""
        def names(handle):
            return [cpimoe.pimoe_tensor_name(handle, i) for i in range(cpimoe.pimoe_tensor_count(handle))]
        return self._call(names)

    def tensor_shape(self, name):
        return self._call(cpimoe.pimoe_tensor_shape, str(name))

    def read_tensor(self, name):
        """A tensor's values as float32 (a compact format dequantised, as the layer computes with them)."""
        def read(handle):
            out = np.empty(cpimoe.pimoe_tensor_shape(handle, str(name)), dtype=np.float32)
            cpimoe.pimoe_py_tensor_read(handle, str(name), out)
            return out
        return self._call(read)

    def save(self, path):
        """Saves the model (settings and weights) to path in libpimoe's format; the file appears only when complete."""
        self._call(cpimoe.pimoe_save, os.fspath(path))
