# SPDX-License-Identifier: MIT
"""The binding reproduces the C library's own results bit for bit: the C reference program
(bindings/reference/reference.c) ran the same models through the C API and wrote what they gave."""
import numpy as np
import pytest

import pimoe
from conftest import CASE_OPTIONS, ROUTING_OPTIONS, Case, RoutingCase


@pytest.mark.parametrize("name", sorted(CASE_OPTIONS))
def test_forward_routing_stats_and_tensors_match_the_c_library(reference_dir, name):
    ref = Case(reference_dir / f"case_{name}.bin")
    with pimoe.Model(CASE_OPTIONS[name]()) as model:
        assert (model.hidden, model.num_experts, model.top_k) == (ref.hidden, ref.experts, ref.top_k)
        routed = model.forward_routing(ref.input)
        np.testing.assert_array_equal(routed.output, ref.output)
        np.testing.assert_array_equal(routed.expert_ids, ref.ids)
        np.testing.assert_array_equal(routed.weights, ref.weights)
        # bit for bit, not just equal as numbers (-0.0 vs 0.0, NaN payloads)
        assert routed.output.tobytes() == ref.output.tobytes()

        stats = model.stats()
        assert (stats.forward_calls, stats.tokens, stats.dropped_tokens) == (ref.forward_calls, ref.tokens,
                                                                              ref.dropped_tokens)
        assert stats.num_experts == ref.experts
        metrics = [stats.expert_utilization, stats.load_cv, stats.load_max_violation, stats.load_jain_index,
                   stats.load_normalized_entropy, stats.routing_confidence, stats.aux_loss, stats.z_loss]
        np.testing.assert_array_equal(np.array(metrics), ref.metrics)
        np.testing.assert_array_equal(model.expert_loads(), ref.loads)
        assert len(model.tensor_names()) == ref.tensors
        assert model.tensor_shape("router.weight") == (ref.experts, ref.hidden)
        np.testing.assert_array_equal(model.read_tensor("router.weight"), ref.router)

    # forward (without routing outputs) on a second model gives the same bits
    with pimoe.Model(CASE_OPTIONS[name]()) as again:
        assert again.forward(ref.input).tobytes() == ref.output.tobytes()


@pytest.mark.parametrize("name", sorted(CASE_OPTIONS))
def test_the_c_librarys_saved_model_loads_and_runs_the_same(reference_dir, name):
    ref = Case(reference_dir / f"case_{name}.bin")
    with pimoe.Model.load(reference_dir / f"case_{name}.safetensors", pimoe.Options(threads=1)) as model:
        assert model.forward(ref.input).tobytes() == ref.output.tobytes()


@pytest.mark.parametrize("name", sorted(ROUTING_OPTIONS))
def test_full_routing_over_calls_and_adaptive_reset_match(reference_dir, name):
    ref = RoutingCase(reference_dir / f"routing_{name}.bin")
    with pimoe.Model(ROUTING_OPTIONS[name]()) as model:
        assert model.routing_slots == ref.slots
        for c, call in enumerate(ref.calls):
            if c == len(ref.calls) - 1:
                model.reset_adaptive_state()
            routed = model.forward_routing(call["input"])
            assert routed.output.tobytes() == call["output"].tobytes(), f"call {c}: output"
            np.testing.assert_array_equal(routed.expert_ids, call["ids"], err_msg=f"call {c}: ids")
            np.testing.assert_array_equal(routed.weights, call["weights"], err_msg=f"call {c}: weights")
            np.testing.assert_array_equal(routed.dropped, call["dropped"].astype(bool), err_msg=f"call {c}: dropped")
            np.testing.assert_array_equal(routed.probabilities, call["probabilities"],
                                          err_msg=f"call {c}: probabilities")
