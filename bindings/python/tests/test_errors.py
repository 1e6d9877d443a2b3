# SPDX-License-Identifier: MIT
"""Errors: every failed call raises pimoe.Error with the library's status and message. The C reference recorded the
status and message of each scenario through the C API (errors.txt); the binding must report exactly those."""
import numpy as np
import pytest

import pimoe
from conftest import basic_options, random_input, read_errors


@pytest.fixture(scope="module")
def expected(reference_dir):
    return read_errors(reference_dir / "errors.txt")


def check(expected, name, excinfo):
    status, message = expected[name]
    e = excinfo.value
    assert isinstance(e, pimoe.Error)
    assert e.status == status, f"{name}: {e}"
    assert isinstance(e.status, pimoe.Status)
    assert e.message == message, name
    assert str(e) == f"{pimoe.Status(status).name}: {message}"


# (scenario of reference.c, what the Python caller does); the setters fail where they are called
SETTER_SCENARIOS = {
    "unknown_option_name": lambda: basic_options().set("no_such_option", 1),
    "wrong_type": lambda: basic_options().set_int(pimoe.OptionKey.TEMPERATURE, 1),
    "bad_value_by_name": lambda: basic_options().set("top_k", "abc"),
    "hidden_zero": lambda: basic_options().set_int(pimoe.OptionKey.HIDDEN, 0),
    "bad_activation_name": lambda: basic_options().set("activation", "mish"),
    "negative_width": lambda: basic_options().expert_width(0, -5),
    "bad_temperature": lambda: basic_options().set_float(pimoe.OptionKey.TEMPERATURE, -1.0),
    "bad_expert_weight_dtype": lambda: basic_options().expert_weight_dtype(0, "int3"),
    "top_k_exceeds": lambda: pimoe.Model(basic_options().set_int(pimoe.OptionKey.TOP_K, 9)),
    "expert_index": lambda: pimoe.Model(basic_options().expert_preset(9, pimoe.ExpertPreset.LOGICAL)),
    "bad_weight_group_size": lambda: pimoe.Model(basic_options().set_int(pimoe.OptionKey.WEIGHT_GROUP_SIZE, 48)),
    "bad_backend": lambda: pimoe.Model(basic_options().set_string(pimoe.OptionKey.BACKEND, "no_such_backend")),
    "cuda_backend": lambda: pimoe.Model(basic_options().set_string(pimoe.OptionKey.BACKEND, "cuda")),
}


@pytest.mark.parametrize("name", sorted(SETTER_SCENARIOS))
def test_options_and_creation_errors(expected, name):
    with pytest.raises(pimoe.Error) as e:
        SETTER_SCENARIOS[name]()
    check(expected, name, e)


def test_attribute_and_keyword_settings_fail_the_same_way(expected):
    o = pimoe.Options()
    with pytest.raises(pimoe.Error) as e:
        o.no_such_option = 1
    check(expected, "unknown_option_name", e)
    with pytest.raises(pimoe.Error) as e:
        pimoe.Options(top_k="abc")
    check(expected, "bad_value_by_name", e)
    with pytest.raises(pimoe.Error) as e:
        pimoe.Model(hidden=64, num_experts=8, top_k=2, intermediate=96, seed=7, deterministic=True, threads=2,
                    backend="cpu", activation="mish")
    check(expected, "bad_activation_name", e)
    # a failed setting is not recorded: the options stay usable
    assert not hasattr(o, "no_such_option")
    with pimoe.Model(basic_options()) as m:
        assert m.hidden == 64


def test_model_call_errors(expected, reference_dir, tmp_path):
    with pimoe.Model(basic_options()) as m:
        x = np.asarray(random_input((2, 1, 64), 1))
        x[1, 0, 3] = np.inf
        with pytest.raises(pimoe.Error) as e:
            m.forward(x)
        assert e.value.status == pimoe.Status.NON_FINITE_INPUT
        assert e.value.message == "pimoe_forward: input[67] (token 1, feature 3) is Inf"
        with pytest.raises(pimoe.Error) as e:
            m.tensor_shape("no.such.tensor")
        check(expected, "tensor_not_found", e)
        with pytest.raises(pimoe.Error) as e:
            m.expert(99)
        check(expected, "expert_out_of_range", e)
        with pytest.raises(pimoe.Error) as e:
            m.save(reference_dir / "no_such_dir" / "model.safetensors")
        check(expected, "save_unwritable", e)
        # the failures left the model working
        assert np.isfinite(m.forward(random_input((2, 64), 2))).all()
    with pytest.raises(pimoe.Error) as e:
        pimoe.Model.load(reference_dir / "no_such_file.safetensors")
    check(expected, "load_missing", e)
    with pytest.raises(pimoe.Error) as e:
        pimoe.Model.load(str(reference_dir / "errors.txt"))
    check(expected, "load_not_a_model", e)
    with pytest.raises(pimoe.Error) as e:
        pimoe.backend_usable("no_such_backend")
    check(expected, "probe_unknown", e)


def test_non_finite_input_names_the_element(expected):
    """The same input as reference.c's non_finite_input scenario: 2 tokens of fill_input(seed 1), element 70 NaN."""
    with pimoe.Model(basic_options()) as m:
        x = np.zeros((2, 1, 64), dtype=np.float32)
        x.reshape(-1)[70] = np.nan
        with pytest.raises(pimoe.Error) as e:
            m.forward(x)
        check(expected, "non_finite_input", e)


def test_a_closed_model_refuses_every_call():
    m = pimoe.Model(basic_options())
    m.close()
    m.close()  # harmless
    assert m.closed
    for call in (lambda: m.forward(random_input((1, 64), 3)), m.stats, m.expert_loads, m.tensor_names,
                 lambda: m.save("never.safetensors"), lambda: m.backend):
        with pytest.raises(pimoe.Error) as e:
            call()
        assert e.value.status == pimoe.Status.NULL_POINTER
        assert e.value.message == "model is closed"
    assert "closed" in repr(m)


def test_error_is_picklable_and_keeps_unknown_codes():
    import pickle

    e = pickle.loads(pickle.dumps(pimoe.Error(pimoe.Status.IO, "cannot open x")))
    assert (e.status, e.message) == (pimoe.Status.IO, "cannot open x")
    future = pimoe.Error(99, "")
    assert future.status == 99 and future.message == "unknown status"
    assert pimoe.Status.FORMAT.describe() == pimoe.cpimoe.pimoe_status_string(11)
