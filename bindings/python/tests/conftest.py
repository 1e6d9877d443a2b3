# SPDX-License-Identifier: MIT
"""Shared helpers of the Python binding's tests: the C reference's records (bindings/reference/README.md), the
options the reference builds its models with, and the paths ctest passes in the environment.

Run by ctest python_pytest (bindings/python/run_python_tests.sh), which sets PIMOE_BINDINGS_REFERENCE,
PIMOE_FIXTURES and PIMOE_PYTHON_PROBE. Run by hand without them, the tests that need them are skipped, saying why."""
import json
import os
import pathlib

import numpy as np
import pytest

import pimoe


def _env_dir(name, what):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set ({what}; ctest python_pytest sets it)")
    path = pathlib.Path(value)
    assert path.exists(), f"{name}={value} does not exist"
    return path


@pytest.fixture(scope="session")
def reference_dir():
    return _env_dir("PIMOE_BINDINGS_REFERENCE", "the C reference's outputs")


@pytest.fixture(scope="session")
def fixtures_dir():
    return _env_dir("PIMOE_FIXTURES", "tests/fixtures, the Hugging Face checkpoints")


# ------------------------------------------------------------------------------------------------ reference options
# The same settings as options_basic(), options_rich() and add_compact_weights() in bindings/reference/reference.c
# (keep in step).
def basic_options():
    return pimoe.Options(hidden=64, num_experts=8, top_k=2, intermediate=96, seed=7, deterministic=True, threads=2,
                         backend="cpu")


def rich_options():
    o = pimoe.Options(hidden=48, num_experts=6, top_k=3, intermediate=64, activation=pimoe.Activation.SILU,
                      pre_norm=True, expert_bias=True, temperature=0.7, renormalize=False, capacity_factor=0.75,
                      aux_loss_coef=0.01, layer_norm_eps=1e-6, seed=11, threads=1, backend="cpu",
                      deterministic=True, cpu_gemm="packed")
    o.expert_preset(pimoe.Options.ALL_EXPERTS, pimoe.ExpertPreset.CREATIVE)
    o.expert_preset(0, pimoe.ExpertPreset.REASONING)
    o.expert_preset(1, pimoe.ExpertPreset.COMPUTATION)
    o.expert_preset(2, pimoe.ExpertPreset.LANGUAGE)
    o.expert_activation(3, pimoe.Activation.RELU)
    o.expert_width(4, 40)
    o.expert_pre_norm(5, False)
    o.expert_preset(5, pimoe.ExpertPreset.GENERIC)
    return o


def compact_options():
    o = basic_options()
    # typed setters here (the reference uses them too), the by-name form is covered by the other cases
    o.set_string(pimoe.OptionKey.WEIGHT_DTYPE, "int4")
    o.set_int(pimoe.OptionKey.WEIGHT_GROUP_SIZE, 64)
    o.set_int(pimoe.OptionKey.WEIGHT_ZERO_POINT, 1)
    o.expert_weight_dtype(0, "bf16")
    o.expert_weight_dtype(3, "int8")
    return o


def features_options():
    """options_features(): the routing features on the basic model."""
    o = basic_options()
    o.deterministic = False
    o.threads = 1
    o.set("weight_dtype", "bf16").set("router_attention_heads", 2).set("router_attention_head_dim", 8)
    o.set("router_attention_causal", True).set("combine_attention_dim", 16).set("group_levels", "2:1,2:2")
    o.set("adaptive_bias_rate", 0.01).set("capacity_factor", 1.0).set("dynamic_capacity", True)
    o.set("capacity_momentum", 0.8).set("routing_mode", "token_choice")
    return o


def router_extensions_options():
    o = basic_options()
    o.set("router_scoring", "sigmoid").set("router_bias", True).set("routed_scaling_factor", 2.5)
    o.set("num_groups", 4).set("topk_groups", 2).set("group_score", "max").set("shared_width", 32)
    o.set("shared_gate", True).set("weight_dtype", "fp16")
    return o


def expert_choice_options():
    return basic_options().set("routing_mode", "expert_choice").set("capacity_factor", 1.5)


CASE_OPTIONS = {"basic": basic_options, "rich": rich_options, "compact": compact_options}
ROUTING_OPTIONS = {"basic": basic_options, "features": features_options,
                   "router_extensions": router_extensions_options, "expert_choice": expert_choice_options}


# ------------------------------------------------------------------------------------------------ reference records
class Case:
    """case_<name>.bin: one forward of a model with its routing, loads, statistics and router weights."""

    def __init__(self, path):
        data = path.read_bytes()
        offset = 0

        def take(dtype, count):
            nonlocal offset
            a = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += a.nbytes
            return a

        self.batch, self.seq, self.hidden, self.top_k, self.experts, self.tensors = (int(v) for v in take(np.int64, 6))
        n = self.batch * self.seq * self.hidden
        r = self.batch * self.seq * self.top_k
        self.input = take(np.float32, n).reshape(self.batch, self.seq, self.hidden)
        self.output = take(np.float32, n).reshape(self.batch, self.seq, self.hidden)
        self.ids = take(np.int32, r).reshape(-1, self.top_k)
        self.weights = take(np.float32, r).reshape(-1, self.top_k)
        self.loads = take(np.uint64, self.experts)
        self.forward_calls, self.tokens, self.dropped_tokens = (int(v) for v in take(np.uint64, 3))
        self.metrics = take(np.float64, 8)
        self.router = take(np.float32, self.experts * self.hidden).reshape(self.experts, self.hidden)
        assert offset == len(data), f"{path}: {len(data) - offset} bytes left over"


class RoutingCase:
    """routing_<name>.bin: the full routing of several calls, then of call 0 again after the adaptive state reset."""

    def __init__(self, path):
        data = path.read_bytes()
        header = np.frombuffer(data, dtype=np.int64, count=6)
        self.batch, self.seq, self.hidden, self.slots, self.experts, calls = (int(v) for v in header)
        offset = header.nbytes
        tokens = self.batch * self.seq
        self.calls = []
        for _ in range(calls):
            call = {}
            for key, dtype, count, cols in (("input", np.float32, tokens * self.hidden, self.hidden),
                                            ("output", np.float32, tokens * self.hidden, self.hidden),
                                            ("ids", np.int32, tokens * self.slots, self.slots),
                                            ("weights", np.float32, tokens * self.slots, self.slots),
                                            ("dropped", np.uint8, tokens * self.slots, self.slots),
                                            ("probabilities", np.float32, tokens * self.experts, self.experts)):
                a = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
                offset += a.nbytes
                call[key] = a.reshape(-1, cols)
            call["input"] = call["input"].reshape(self.batch, self.seq, self.hidden)
            call["output"] = call["output"].reshape(self.batch, self.seq, self.hidden)
            self.calls.append(call)
        assert offset == len(data), f"{path}: {len(data) - offset} bytes left over"


def read_errors(path):
    """errors.txt: {scenario: (status, message)}."""
    records = {}
    for line in path.read_text().splitlines():
        name, status, message = line.split("\t", 2)
        records[name] = (int(status), message)
    return records


def read_safetensors(path):
    """{name: float32 array} of an F32 safetensors file (the fixtures' expected.safetensors)."""
    data = pathlib.Path(path).read_bytes()
    size = int(np.frombuffer(data, dtype="<u8", count=1)[0])
    header = json.loads(data[8:8 + size])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + size + begin:8 + size + end], dtype="<f4").reshape(info["shape"])
    return tensors


def random_input(shape, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)
