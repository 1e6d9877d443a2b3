# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the fuzz targets that take structured inputs (tests/fuzz/corpus/<target>/seed_*).

  python3 tests/fuzz/make_seeds.py [--check build/libpimoe.so]

hf_import: every checkpoint of tests/fixtures shrunk to a few KB (hidden 8, 8 experts, width 4; gpt_oss hidden 32):
  config.json as the fixture has it with the sizes replaced, and the leading sub-block of each of layer 1's MoE tensors
  (the fixture's own values and dtypes: F32, BF16, F8_E4M3 with its scales, MXFP4 blocks), packed in the layout of
  fuzz_hf_import.cpp, once in model.safetensors and once split over two shards with an index; and crafted broken
  ones (a shard outside the folder, a missing tensor, a wrong shape, a truncated shard, a dense layer).
options: command lines of fuzz_options.cpp (every option, presets, overrides, environment variables).
api_sequence: byte programs of fuzz_api_sequence.cpp, from a fixed pseudo-random stream (every input is a program).
--check LIB imports every hf_import seed that should import through LIB's pimoe_import_hf and fails when one does
not, so that the seeds start the fuzzer inside the importer rather than at its first check.
Plain Python 3 (json, struct); no third-party module. The fuzzer adds its own findings next to these files.
"""
import argparse
import ctypes
import json
import os
import random
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
CORPUS = os.path.join(HERE, "corpus")
SEPARATOR = b"\n--pimoe-part--\n"  # fuzz_hf_import.cpp's kSeparator
DTYPE_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "U8": 1}

# Per family: the config keys of experts and width, and the layer the fixture's MoE block is.
FAMILIES = {
    "mixtral": ("num_local_experts", "intermediate_size"),
    "qwen2_moe": ("num_experts", "moe_intermediate_size"),
    "qwen3_moe": ("num_experts", "moe_intermediate_size"),
    "olmoe": ("num_experts", "intermediate_size"),
    "deepseek_v2": ("n_routed_experts", "moe_intermediate_size"),
    "deepseek_v3": ("n_routed_experts", "moe_intermediate_size"),
    "deepseek_v3_fp8": ("n_routed_experts", "moe_intermediate_size"),
    "gpt_oss": ("num_local_experts", "intermediate_size"),
}
LAYER = 1
EXPERTS, WIDTH = 8, 4


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {name: (t["dtype"], t["shape"], raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]])
            for name, t in header.items()}


def write_safetensors(tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def sub_block(data, shape, new_shape, size):
    """The leading new_shape block of a row-major tensor of `shape` with `size`-byte elements."""
    if not shape:
        return data[:size]
    inner = size
    for d in shape[1:]:
        inner *= d
    return b"".join(sub_block(data[i * inner:(i + 1) * inner], shape[1:], new_shape[1:], size)
                    for i in range(new_shape[0]))


def shrunk_shape(name, shape, hidden, config, family):
    """The shape a layer-1 MoE tensor has in the shrunk checkpoint, or None to leave it out."""
    e, w = EXPERTS, WIDTH
    parts = name.split(".")
    if "experts" in parts and parts[parts.index("experts") + 1].isdigit():
        if int(parts[parts.index("experts") + 1]) >= e:
            return None
    shared = w if "shared_expert_intermediate_size" in config else config.get("n_shared_experts", 0) * w
    if name.endswith("_scale_inv"):
        return [1, 1]
    if family == "gpt_oss":
        leaf = parts[-1]
        return {"weight": [e, hidden], "bias": [e] if "router" in parts else [e, hidden],
                "gate_up_proj_blocks": [e, 2 * w, 1, 16], "gate_up_proj_scales": [e, 2 * w, 1],
                "gate_up_proj_bias": [e, 2 * w], "down_proj_blocks": [e, hidden, 1, 16],
                "down_proj_scales": [e, hidden, 1], "down_proj_bias": [e, hidden]}[leaf]
    inner = shared if "shared_expert" in name or "shared_experts" in name else w
    if name.endswith("shared_expert_gate.weight"):
        return [1, hidden]
    if name.endswith("gate.weight") and "experts" not in parts and "shared_expert" not in name:
        return [e, hidden]  # the router
    if name.endswith("e_score_correction_bias"):
        return [e]
    if any(p in ("down_proj", "w2") for p in parts):
        return [hidden, inner]
    return [inner, hidden]  # gate/up projections


def shrunk_fixture(family):
    """config.json and layer 1's MoE tensors of a fixture, shrunk."""
    folder = os.path.join(FIXTURES, family)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    experts_key, width_key = FAMILIES[family]
    hidden = 32 if family == "gpt_oss" else 8
    tensors = {}
    for file in sorted(os.listdir(folder)):
        if not (file.startswith("model") and file.endswith(".safetensors")):
            continue
        for name, (dtype, shape, data) in read_safetensors(os.path.join(folder, file)).items():
            if not name.startswith("model.layers.%d." % LAYER):
                continue
            new_shape = shrunk_shape(name, shape, hidden, config, family)
            if new_shape is not None:
                tensors[name] = (dtype, new_shape, sub_block(data, shape, new_shape, DTYPE_BYTES[dtype]))
    config["hidden_size"] = hidden
    config[experts_key] = EXPERTS
    config[width_key] = WIDTH
    if "shared_expert_intermediate_size" in config:
        config["shared_expert_intermediate_size"] = WIDTH
    for key in ("num_experts_per_tok", "experts_per_token"):
        if key in config:
            config[key] = min(config[key], EXPERTS)
    return config, dict(sorted(tensors.items()))


def pack(config_text, shards, index=None, layer=LAYER, weight_dtype=0):
    """fuzz_hf_import.cpp's input: layer byte, WEIGHT_DTYPE byte, config, index (b"" = none), shards."""
    parts = [config_text, index if index is not None else b""] + shards
    return bytes([layer, weight_dtype]) + SEPARATOR.join(parts)


def sharded(config_text, tensors):
    names = list(tensors)
    first = dict((n, tensors[n]) for n in names[: len(names) // 2])
    second = dict((n, tensors[n]) for n in names[len(names) // 2:])
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {n: files[0] for n in first}
    weight_map.update({n: files[1] for n in second})
    index = json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1).encode()
    return index, [write_safetensors(first), write_safetensors(second)]


def hf_import_seeds():
    """(file name, bytes, should import) for every hf_import seed."""
    seeds = []
    for family in FAMILIES:
        config, tensors = shrunk_fixture(family)
        text = json.dumps(config, indent=1).encode()
        seeds.append(("seed_%s_single" % family, pack(text, [write_safetensors(tensors)]), True))
        index, shards = sharded(text, tensors)
        seeds.append(("seed_%s_sharded" % family, pack(text, shards, index), True))
        # The runtime WEIGHT_DTYPE bytes 8..14 of fuzz_hf_import.cpp: fp32, bf16, fp16, int8, int4, fp8, mxfp4.
        seeds.append(("seed_%s_int4" % family, pack(text, [write_safetensors(tensors)], weight_dtype=12), True))
    config, tensors = shrunk_fixture("mixtral")
    text = json.dumps(config).encode()
    index, shards = sharded(text, tensors)
    broken = dict(tensors)
    missing = broken.pop(sorted(broken)[0])
    del missing
    wrong = dict(tensors)
    name = next(n for n in sorted(wrong) if n.endswith("w1.weight"))
    dtype, shape, data = wrong[name]
    wrong[name] = (dtype, [shape[1], shape[0]], data)  # [8, 4] as [4, 8]
    escape = index.replace(b'"model-00002-of-00002.safetensors"', b'"../model-00002-of-00002.safetensors"', 1)
    seeds += [
        ("seed_crafted_missing_tensor", pack(text, [write_safetensors(broken)]), False),
        ("seed_crafted_transposed", pack(text, [write_safetensors(wrong)]), False),
        ("seed_crafted_shard_outside", pack(text, shards, escape), False),
        ("seed_crafted_truncated_shard", pack(text, [write_safetensors(tensors)[:-40]]), False),
        ("seed_crafted_dense_layer", pack(json.dumps(dict(shrunk_fixture("deepseek_v3")[0],
                                                          first_k_dense_replace=2)).encode(), [b""]), False),
        ("seed_crafted_no_checkpoint", pack(text, []), False),
        ("seed_crafted_not_json", pack(b"{\"model_type\": \"mixtral\",", [b""]), False),
    ]
    return seeds


def options_seeds():
    lines = {
        "basic": "hidden=8\nnum_experts=4\ntop_k=2\nintermediate=8\nactivation=swiglu\ntemperature=0.7\n",
        "router": "hidden=8\nnum_experts=8\ntop_k=3\nintermediate=4\nrouter_scoring=sigmoid\nrouter_bias=1\n"
                  "routed_scaling_factor=2.5\nnum_groups=4\ntopk_groups=2\ngroup_score=max\nrenormalize=0\n",
        "features": "hidden=8\nnum_experts=4\nintermediate=4\nrouting_mode=expert_choice\nadaptive_bias_rate=0.01\n"
                    "dynamic_capacity=1\ncapacity_momentum=0.5\nrouter_attention_heads=2\nrouter_attention_head_dim=4\n"
                    "router_attention_causal=1\ncombine_attention_dim=4\ngroup_levels=2:1,4:2\n",
        "shared": "hidden=8\nnum_experts=4\nintermediate=4\nshared_width=8\nshared_gate=1\nexpert_bias=1\n"
                  "router_logit_bias=1\nactivation=swiglu_oai\nswiglu_alpha=1.5\nswiglu_limit=6\n",
        "formats": "hidden=64\nnum_experts=2\ntop_k=1\nintermediate=64\nweight_dtype=int4\nweight_group_size=64\n"
                   "weight_zero_point=1\nactivation_dtype=fp32\n@1.weight_dtype=bf16\n@0.weight_dtype=mxfp4\n",
        "experts": "hidden=8\nnum_experts=4\nintermediate=4\n@-1.preset=2\n@1.preset=5\n@2.activation=3\n@2.width=6\n"
                   "@3.pre_norm=1\n@0.callback=1\nlayer_norm_eps=0.001\ncapacity_factor=1.5\naux_loss_coef=0.01\n",
        "typed": "%0=8\n%1=4\n%2=2\n%3=8\n~7=0.5\n^14=cpu\n^16=packed\n%12=42\n%15=1\n%13=2\n",
        "environment": "hidden=8\nnum_experts=2\nintermediate=4\n$PIMOE_CUDA_STREAM_TOKENS=12.7\n"
                       "$PIMOE_CUDA_DECODE_GEMM_ROWS=3.5e2\n$PIMOE_VULKAN_TILES=coopmat-x\n$PIMOE_VULKAN_VALIDATION=sync\n"
                       "$PIMOE_CUDA_NO_WGMMA=0\n$PIMOE_VULKAN_COOPMAT_N=16\n$PIMOE_VULKAN_ROUTING=host\n"
                       "$PIMOE_VULKAN_PROFILE=1\nexperimental.cuda_stream_tokens=4\nexperimental.vulkan_tiles=fma\n",
        "bad": "hidden= 8\nhidden=8 \ntop_k=99\nnum_experts=0\nbackend=vulkan:x\ngroup_levels=1:2,\n%9999=1\n"
               "^0=8\n~3=1e999\n@-5.preset=1\n@1.preset=99\nseed=-1\nthreads=4096\nweight_group_size=48\n",
    }
    return [("seed_" + name, text.encode(), None) for name, text in lines.items()]


def api_sequence_seeds():
    rng = random.Random(16)
    seeds = []
    for i in range(24):
        length = rng.choice([16, 48, 96, 200, 400])
        seeds.append(("seed_random_%02d" % i, bytes(rng.randrange(256) for _ in range(length)), None))
    # Op bytes (fuzz_api_sequence.cpp: byte % 9): 0 forward, 1 forward_routing, 2 stats, 3 reset, 4 adaptive reset,
    # 5 save+load, 6 callback, 7 tensors, 8 describe. A layer of hidden 8, 4 experts, top_k 2, width 8, then
    # save/load with the output check, forwards and stats.
    layer = bytes([3, 7, 1, 7, 2, 1, 0b01000000, 0b00000110, 64, 1, 4, 1, 0])
    program = bytes([0, 2, 3, 0, 0, 0, 1, 5, 0, 1, 2, 0, 1, 2, 2, 0, 3, 1, 2, 3, 0x1f, 0, 0, 0, 0, 4, 7, 0, 0, 8, 0])
    seeds.append(("seed_layer_save_load", layer + program, None))
    return seeds


def write(target, seeds):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.startswith("seed_"):
            os.remove(os.path.join(folder, name))
    for name, data, _ in seeds:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds, %d bytes" % (target, len(seeds), sum(len(d) for _, d, _ in seeds)))


def unpack_into(folder, data):
    """What fuzz_hf_import.cpp writes for an input (for --check)."""
    parts = data[2:].split(SEPARATOR)
    with open(os.path.join(folder, "config.json"), "wb") as f:
        f.write(parts[0])
    is_sharded = len(parts) > 1 and parts[1]
    if is_sharded:
        with open(os.path.join(folder, "model.safetensors.index.json"), "wb") as f:
            f.write(parts[1])
    names = (["model-00001-of-00002.safetensors"] if is_sharded else ["model.safetensors"]) + \
        ["model-00002-of-00002.safetensors"]
    for name, part in zip(names, parts[2:4]):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(part)


def check(library, seeds):
    lib = ctypes.CDLL(library)
    lib.pimoe_import_hf.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.pimoe_last_error.restype = ctypes.c_char_p
    failed = 0
    for name, data, should_import in seeds:
        folder = tempfile.mkdtemp(prefix="pimoe-seed-")
        try:
            unpack_into(folder, data)
            model = ctypes.c_void_p()
            status = lib.pimoe_import_hf(folder.encode(), data[0] % 4, None, ctypes.byref(model))
            if model:
                lib.pimoe_destroy(model)
            if (status == 0) != should_import:
                failed += 1
                print("FAIL: %s: status %d (%s)" % (name, status, lib.pimoe_last_error().decode()))
        finally:
            shutil.rmtree(folder)
    if failed:
        sys.exit(1)
    print("check: every hf_import seed imports or fails as meant")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="LIB", help="libpimoe.so to import the hf_import seeds with")
    args = parser.parse_args()
    hf = hf_import_seeds()
    if args.check:
        check(args.check, [s for s in hf if s[1][1] == 0])  # the seeds with WEIGHT_DTYPE "auto"
    write("hf_import", hf)
    write("options", options_seeds())
    write("api_sequence", api_sequence_seeds())


if __name__ == "__main__":
    main()
