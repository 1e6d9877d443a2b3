#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pimoe-info on a valid native file (describes it as `pimoe info` does, says it loads, exits 0; its quantisation
# error, 0, and with --weight-dtype int4 a non-zero one), on one with compact matrices (each expert's format, the
# weight bytes per format, an unknown quantisation error) and on hostile ones (says why the layer is invalid, prints
# its metadata as written, says why it does not load, exits 1), and on Hugging Face checkpoint folders (family,
# settings, which layers import; a hostile config.json fails at once, naming it);
# --version prints the library's VERSION and exits 0.
# usage: check_pimoe_info.sh PIMOE_INFO CORPUS_DIR FIXTURES_DIR VERSION
set -uo pipefail
tool=${1:?pimoe-info}
corpus=${2:?corpus dir}
fixtures=${3:?fixtures dir}
version=${4:?version}
fail=0
expect() {  # expect NAME OUTPUT PATTERN
  if grep -qE -- "$3" <<<"$2"; then echo "ok: $1: /$3/"; else echo "FAIL: $1: no /$3/ in:"; echo "$2"; fail=1; fi
}

out=$("$tool" --version); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc for --version"; fail=1; }
expect version "$out" "^pimoe-info \(libpimoe\) ${version//./\\.}$"
"$tool" --version extra >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || { echo "FAIL: exit $rc for --version with an extra argument (expected 2)"; fail=1; }

out=$("$tool" --tensors "$corpus/valid_small.safetensors"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on a valid file"; fail=1; }
expect valid "$out" "^format: +pimoe.moe version 1"
expect valid "$out" "^layer: +hidden 8, 2 experts, top_k 1"
expect valid "$out" "^router: +softmax, temperature 1\.0, renormalize true, capacity_factor 0\.0 \(dropless\)"
expect valid "$out" "^features: +none \(softmax top-k\)$"
expect valid "$out" "^ +1 +gelu +4 +1 +1 +fp32$"
expect valid "$out" "^tensors: +11; dtype F32 \(11 tensors, [0-9]+ bytes\)"
expect valid "$out" "^  router.weight +F32 +\[2, 8\]"
expect valid "$out" "^loads: +yes \(backend (cpu|cuda), 11 weight tensors\)"
expect valid "$out" "^size: +[0-9]+ bytes"
expect valid "$out" "^quant error: +rel RMS 0, max abs 0 "

# --weight-dtype loads the fp32 file into that format: the error of storing its weights so, a non-zero one.
out=$("$tool" --weight-dtype int4 "$corpus/valid_small.safetensors"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on a valid file loaded as int4"; fail=1; }
expect as_int4 "$out" "^quant error: +rel RMS 0\.0*[1-9][0-9.e-]*, max abs 0\.0*[1-9][0-9.e-]* "

out=$("$tool" "$corpus/valid_compact_mixed.safetensors"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on a valid compact file"; fail=1; }
expect compact "$out" "^experts: +# +activation +intermediate +pre_norm +bias +format$"
expect compact "$out" "^ +0 +gelu +48 +0 +0 +bf16$"
expect compact "$out" "^ +2 +gelu +48 +0 +0 +fp32$"
expect compact "$out" "^shared: +width 16, gated false, format int4-g32-zp$"
expect compact "$out" "^weights: +bf16: 2 matrices, 7680 bytes; fp32: 2 matrices, 15360 bytes; int4-g32-zp: 5 matrices, [0-9]+ bytes; int8: 2 matrices, [0-9]+ bytes; other tensors [0-9]+ bytes; total [0-9]+ bytes$"
expect compact "$out" "^loads: +yes"
expect compact "$out" "^quant error: +unknown "

out=$("$tool" "$corpus/compact_int4_padding.safetensors"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on a hostile compact file"; fail=1; }
expect compact_hostile "$out" "^loads: +no: .*experts.0.up.weight.* \(int4-g32\): row 0 padding element 40"

out=$("$tool" "$corpus/metadata_contradicts_shape.safetensors"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on a hostile file"; fail=1; }
expect hostile "$out" "^layer: +invalid: .*router.weight.* has shape \[2, 8\]"
expect hostile "$out" "^metadata: +pimoe.hidden = 512$"
expect hostile "$out" "^loads: +no: .*router.weight.* has shape \[2, 8\] but the metadata"

out=$("$tool" "$corpus/offsets_overlap.safetensors"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on an overlapping file"; fail=1; }
expect overlap "$out" "^safetensors: invalid: .*overlap"

out=$("$tool" "$fixtures/deepseek_v3"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on a checkpoint folder"; fail=1; }
expect checkpoint "$out" "^family: +deepseek_v3 \(Hugging Face checkpoint\)"
expect checkpoint "$out" "^router: +scoring sigmoid, norm_topk_prob true, n_group 4, topk_group 2"
expect checkpoint "$out" "^layer 0 +no MoE block: .*dense"
expect checkpoint "$out" "^layer 1 +MoE: hidden 64, 16 experts, top_k 4, .*; imports: [0-9]+ weight tensors, quant error rel RMS 0, "
expect checkpoint "$out" "^loads: +yes \(1 of 1 MoE layers import\)"

out=$("$tool" --weight-dtype int8 "$fixtures/deepseek_v3"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on a checkpoint folder imported as int8"; fail=1; }
expect checkpoint_int8 "$out" "^layer 1 +MoE: .*; imports: .*, quant error rel RMS 0\.0*[1-9][0-9.e-]*, max abs "

out=$("$tool" "$fixtures/deepseek_v3_fp8"); rc=$?
[ $rc = 0 ] || { echo "FAIL: exit $rc on an FP8 checkpoint folder"; fail=1; }
expect checkpoint_fp8 "$out" "^layer 1 +MoE: .*; imports: .*, quant error unknown "

# The families of make_family_fixtures.py: the dims under each family's spellings (DBRX's nested ffn_config and its
# n_layers, ERNIE's moe_k, Hunyuan's per-layer moe_topk), the dense layers refused with the rule, layer 1 loads.
for family in granitemoe dbrx glm4_moe ernie4_5_moe hunyuan_v1_moe dots1 jamba qwen3_next minimax minimax_m2 \
    llama4_text phimoe bailing_hybrid; do
  out=$("$tool" "$fixtures/$family"); rc=$?
  [ $rc = 0 ] || { echo "FAIL: exit $rc on the $family checkpoint folder"; fail=1; }
  expect "$family" "$out" "^family: +$family \(Hugging Face checkpoint\)"
  expect "$family" "$out" "^layer dims: +hidden 64, [0-9]+ routed experts, top_k [][0-9,]+, expert width [0-9]+$"
  expect "$family" "$out" "^layer 1 +MoE: hidden 64, .*; imports: "
done
out=$("$tool" "$fixtures/dbrx")
expect dbrx_dims "$out" "^layer dims: +hidden 64, 8 routed experts, top_k 2, expert width 32$"
expect dbrx_layers "$out" "^loads: +yes \(1 of 2 MoE layers import\)"  # n_layers = 2; the fixture holds layer 1 only
expect dbrx_layer0 "$out" "^layer 0 +MoE: .*does not import: .*'transformer\.blocks\.0\.ffn\.router\.layer\.weight' is missing"
# llama4 (the multimodal config): the text model's settings come from text_config, its tensors from language_model.
llama4=$(mktemp -d)
cp "$fixtures/llama4_text/model.safetensors" "$llama4/"
printf '{"model_type": "llama4", "text_config": %s}\n' "$(cat "$fixtures/llama4_text/config.json")" >"$llama4/config.json"
out=$("$tool" "$llama4")
rm -rf "$llama4"
expect llama4_dims "$out" "^layer dims: +hidden 64, 8 routed experts, top_k 1, expert width 32$"
expect llama4_layer1 "$out" "^layer 1 +MoE: .*does not import: .*'language_model\.model\.layers\.1\.feed_forward\.router\.weight' is missing"
out=$("$tool" "$fixtures/jamba")
expect jamba_dense "$out" "^layer 0 +no MoE block: .*expert_layer_period = 2, expert_layer_offset = 1.*MoE layers: 1 of 2"

mkdir -p "${TMPDIR:-/tmp}/pimoe-info-empty.$$"
out=$("$tool" "${TMPDIR:-/tmp}/pimoe-info-empty.$$"); rc=$?
rmdir "${TMPDIR:-/tmp}/pimoe-info-empty.$$"
[ $rc = 1 ] || { echo "FAIL: exit $rc on a folder without config.json"; fail=1; }
expect no_config "$out" "^checkpoint: +cannot open '.*/config.json': it does not exist"

# Counts read from config.json bound the work before it starts: num_hidden_layers = 2^40 is refused at once (it
# looped, casting the layer to int32), naming the file and the key; a config.json that is a FIFO fails without
# blocking, a directory as one.
scratch="${TMPDIR:-/tmp}/pimoe-info-hostile.$$"
mkdir -p "$scratch"
cp "$fixtures/mixtral/config.json" "$fixtures/mixtral/model.safetensors" "$scratch/"
sed -i 's/"num_hidden_layers": *[0-9]*/"num_hidden_layers": 1099511627776/' "$scratch/config.json"
grep -q '"num_hidden_layers": 1099511627776' "$scratch/config.json" || { echo "FAIL: could not edit config.json"; fail=1; }
out=$(timeout 20 "$tool" "$scratch"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on num_hidden_layers = 2^40 (124: it did not stop)"; fail=1; }
expect huge_layers "$out" "^checkpoint: +file '.*/config.json': key 'num_hidden_layers' = 1099511627776 is not an integer in \[1, 1024\]"
rm "$scratch/config.json"
mkfifo "$scratch/config.json"
out=$(timeout 20 "$tool" "$scratch"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on a FIFO config.json (124: it blocked)"; fail=1; }
expect fifo_config "$out" "^checkpoint: +'.*/config.json' is not a regular file"
rm "$scratch/config.json"
mkdir "$scratch/config.json"
out=$(timeout 20 "$tool" "$scratch"); rc=$?
[ $rc = 1 ] || { echo "FAIL: exit $rc on a directory config.json"; fail=1; }
expect dir_config "$out" "^checkpoint: +'.*/config.json' is a directory"
rm -r "$scratch"

"$tool" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || { echo "FAIL: exit $rc without arguments (expected 2)"; fail=1; }
exit $fail
