# SPDX-License-Identifier: MIT
"""The pythonic layer: lifetime, the three ways of setting options, statistics as a dataclass, save/load, the
Hugging Face import, the version."""
import dataclasses
import re

import numpy as np
import pytest

import pimoe
from conftest import basic_options, random_input, read_safetensors


def test_context_manager_closes_and_properties_describe_the_layer():
    with pimoe.Model(basic_options()) as m:
        assert (m.hidden, m.num_experts, m.top_k, m.routing_slots) == (64, 8, 2, 2)
        assert m.backend == "cpu"
        assert not m.closed
        assert m.last_error == ""
        assert re.fullmatch(r"pimoe.Model\(hidden=64, num_experts=8, top_k=2, backend='cpu'\)", repr(m))
    assert m.closed


def test_expert_specs_follow_the_presets():
    o = basic_options().set("activation", pimoe.Activation.SILU).expert_preset(1, pimoe.ExpertPreset.COMPUTATION)
    o.expert_pre_norm(2, True)
    with pimoe.Model(o) as m:
        assert m.expert(0) == pimoe.ExpertSpec(pimoe.Activation.SILU, 96, False)
        assert m.expert(1) == pimoe.ExpertSpec(pimoe.Activation.GELU, 192, False)  # COMPUTATION: GELU, 2x width
        assert m.expert(2).pre_norm is True


def test_keywords_attributes_set_and_typed_setters_make_the_same_model():
    x = random_input((2, 3, 64), 1)
    by_keyword = pimoe.Options(hidden=64, num_experts=8, top_k=2, intermediate=96, seed=7, backend="cpu")
    by_attribute = pimoe.Options()
    by_attribute.hidden = 64
    by_attribute.num_experts = 8
    by_attribute.top_k = 2
    by_attribute.intermediate = 96
    by_attribute.seed = 7
    by_attribute.backend = "cpu"
    by_set = pimoe.Options().set("hidden", "64").set("num_experts", 8).set("top_k", 2).set("intermediate", 96)
    by_set.set("seed", 7).set("backend", "cpu")
    typed = pimoe.Options()
    for key, value in ((pimoe.OptionKey.HIDDEN, 64), (pimoe.OptionKey.NUM_EXPERTS, 8), (pimoe.OptionKey.TOP_K, 2),
                       (pimoe.OptionKey.INTERMEDIATE, 96), (pimoe.OptionKey.SEED, 7)):
        typed.set_int(key, value)
    typed.set_string(pimoe.OptionKey.BACKEND, "cpu")
    outputs = []
    for options in (by_keyword, by_attribute, by_set, typed):
        with pimoe.Model(options) as m:
            outputs.append(m.forward(x).tobytes())
    with pimoe.Model(hidden=64, num_experts=8, top_k=2, intermediate=96, seed=7, backend="cpu") as m:
        outputs.append(m.forward(x).tobytes())
    assert len(set(outputs)) == 1
    # a different seed is a different model (the settings were not ignored)
    with pimoe.Model(by_keyword.copy().set("seed", 8)) as m:
        assert m.forward(x).tobytes() != outputs[0]
    assert by_attribute.top_k == 2 and by_set.hidden == "64"
    with pytest.raises(AttributeError, match="not set"):
        by_keyword.temperature
    assert repr(by_keyword).startswith("pimoe.Options(hidden=64, num_experts=8")


def test_option_values_are_spelled_as_the_library_reads_them():
    o = pimoe.Options(hidden=32, num_experts=4, top_k=1, intermediate=16, backend="cpu", renormalize=False,
                      temperature=0.1, layer_norm_eps=1e-6, activation=pimoe.Activation.GELU_TANH)
    with pimoe.Model(o) as m:
        assert m.expert(0).activation == pimoe.Activation.GELU_TANH
    with pytest.raises(TypeError, match="option value"):
        pimoe.Options(hidden=[64])


def test_stats_dataclass_covers_every_field_of_the_c_snapshot():
    c_fields = {name for name in dir(pimoe.cpimoe.pimoe_stats_snapshot)
                if not name.startswith("_") and name not in ("this", "thisown")}
    py_fields = {f.name for f in dataclasses.fields(pimoe.Stats)}
    assert py_fields == c_fields - {"struct_size"}
    with pimoe.Model(basic_options()) as m:
        before = m.stats()
        assert before.forward_calls == 0 and before.tokens == 0
        for i in range(3):
            m.forward(random_input((2, 5, 64), i))
        s = m.stats()
        assert isinstance(s, pimoe.Stats)
        assert (s.forward_calls, s.tokens, s.dropped_tokens, s.num_experts) == (3, 30, 0, 8)
        assert s.latency_mean_ms > 0 and s.tokens_per_second > 0 and s.weight_bytes > 0
        assert 0 < s.expert_utilization <= 1 and 1 / 8 <= s.load_jain_index <= 1
        assert (s.weight_quant_rel_rms_error, s.weight_quant_max_abs_error) == (0.0, 0.0)  # fp32 weights
        loads = m.expert_loads()
        assert loads.dtype == np.uint64 and loads.shape == (8,)
        assert int(loads.sum()) == 30 * 2
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.tokens = 0
        m.reset_stats()
        assert m.stats().forward_calls == 0 and int(m.expert_loads().sum()) == 0


def test_save_load_round_trip_is_bit_exact(tmp_path):
    x = random_input((3, 4, 64), 2)
    path = tmp_path / "model.safetensors"
    with pimoe.Model(basic_options().set("weight_dtype", "int8")) as m:
        y = m.forward(x)
        names = m.tensor_names()
        router = m.read_tensor("router.weight")
        m.save(path)
    with pimoe.Model.load(path) as loaded:  # os.PathLike accepted
        assert loaded.forward(x).tobytes() == y.tobytes()
        assert loaded.tensor_names() == names
        assert loaded.read_tensor("router.weight").tobytes() == router.tobytes()
    with pimoe.Model.load(str(path), pimoe.Options(threads=1, backend="cpu")) as loaded:
        assert loaded.forward(x).tobytes() == y.tobytes()


def test_import_hf_matches_transformers_and_round_trips(fixtures_dir, tmp_path):
    """The committed Mixtral fixture: the block's output computed by transformers' MixtralSparseMoeBlock
    (expected.safetensors), within 1e-5 of the output RMS as the C++ suite pins it."""
    expected = read_safetensors(fixtures_dir / "mixtral" / "expected.safetensors")
    x = np.ascontiguousarray(expected["input"], dtype=np.float32)
    with pimoe.Model.import_hf(fixtures_dir / "mixtral", 1, pimoe.Options(backend="cpu")) as m:
        assert (m.hidden, m.num_experts, m.top_k) == (64, 8, 2)
        y = m.forward(x)
        rms = float(np.sqrt(np.mean(expected["output"].astype(np.float64) ** 2)))
        assert float(np.max(np.abs(y - expected["output"]))) / rms <= 1e-5
        m.save(tmp_path / "imported.safetensors")
    with pimoe.Model.load(tmp_path / "imported.safetensors") as loaded:
        assert loaded.forward(x).tobytes() == y.tobytes()
    with pytest.raises(pimoe.Error) as e:
        pimoe.Model.import_hf(fixtures_dir / "mixtral", 99)
    assert e.value.status == pimoe.Status.INVALID_ARGUMENT and "layer" in e.value.message
    with pytest.raises(pimoe.Error) as e:
        pimoe.Model.import_hf(tmp_path / "no_such_checkpoint", 1)
    assert e.value.status == pimoe.Status.IO and "no_such_checkpoint" in e.value.message


def test_version_and_backends():
    v = pimoe.version()
    assert pimoe.__version__ == v
    major, minor, patch = (int(p) for p in v.split("."))
    assert pimoe.version_number() == major * 10000 + minor * 100 + patch
    assert pimoe.abi_version() == pimoe.cpimoe.PIMOE_ABI_VERSION
    assert pimoe.build_info()
    assert "cpu" in pimoe.backends()
    assert pimoe.backend_usable("cpu")


def test_input_shapes_one_token_one_sequence_and_batches():
    with pimoe.Model(basic_options()) as m:
        x = random_input((2, 3, 64), 3)
        y = m.forward(x)
        assert y.shape == (2, 3, 64) and y.dtype == np.float32
        # tokens are routed independently here: the same token gives the same bits in any shape
        assert m.forward(x[1, 2]).tobytes() == y[1, 2].tobytes()
        assert m.forward(x.reshape(6, 64)).tobytes() == y.tobytes()
        routed = m.forward_routing(x)
        assert routed.expert_ids.shape == (6, 2) and routed.probabilities.shape == (6, 8)
        assert routed.dropped.dtype == np.bool_ and not routed.dropped.any()
        np.testing.assert_allclose(routed.probabilities.sum(axis=1), 1.0, rtol=1e-5)
