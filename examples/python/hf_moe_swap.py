# SPDX-License-Identifier: MIT
"""Swaps the MoE blocks of a Hugging Face model for libpimoe layers and checks the logits.

A tiny Mixtral (or Qwen2-MoE) is built from a config with random weights (nothing is downloaded), saved with
save_pretrained, and each decoder layer's MoE block is imported from that checkpoint with pimoe.Model.import_hf and
put in the block's place as a torch module. The tensors cross without copies: PyTorch's hidden states go to
Model.forward as they are (DLPack), and the library writes into a tensor PyTorch allocated. The script prints how far
the swapped model's logits are from the original's, next to how far they move when the MoE blocks are dropped
altogether (the scale that the first number must be small against), and fails when the swap is off.

Needs torch and transformers (development tools, not dependencies of the binding) and the pimoe package:

    pip install --no-build-isolation ./bindings/python   # PKG_CONFIG_PATH at libpimoe: bindings/python/README.md
    python examples/python/hf_moe_swap.py --family mixtral   # or --family qwen2_moe
"""
import argparse
import math
import tempfile

import torch
import transformers

import pimoe


class PimoeMoeBlock(torch.nn.Module):
    """An MoE block computed by libpimoe: [batch, seq, hidden] float32 in, the same out. Inference only (libpimoe has
    no backward pass)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states):
        x = hidden_states.detach().contiguous()  # already contiguous in these models: no copy
        out = torch.empty_like(x)
        self.layer.forward(x, out=out)  # x and out cross by DLPack: the library reads and writes their storage
        return out


class Dropped(torch.nn.Module):
    """An MoE block that contributes nothing (to measure how much the blocks matter)."""

    def forward(self, hidden_states):
        return torch.zeros_like(hidden_states)


def tiny_model(family, seed):
    torch.manual_seed(seed)
    common = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=128, num_experts_per_tok=2)
    if family == "mixtral":
        config = transformers.MixtralConfig(intermediate_size=96, num_local_experts=8, **common)
        model = transformers.MixtralForCausalLM(config)
    else:
        config = transformers.Qwen2MoeConfig(intermediate_size=128, moe_intermediate_size=48, num_experts=8,
                                             shared_expert_intermediate_size=96, norm_topk_prob=False,
                                             decoder_sparse_step=1, mlp_only_layers=[], **common)
        model = transformers.Qwen2MoeForCausalLM(config)
    # The default initialisation (std 0.02) makes every block nearly zero, which would make any swap look right:
    # give the MoE weights the scale of a trained layer (std 1/sqrt(fan-in)).
    with torch.no_grad():
        for layer in model.model.layers:
            for name, p in layer.mlp.named_parameters():
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
    return model.eval()


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def relative(a, b):
    """max |a - b| / RMS(a)."""
    return float((a - b).abs().max() / a.pow(2).mean().sqrt())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=("mixtral", "qwen2_moe"), default="mixtral")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |difference| / RMS of the logits")
    parser.add_argument("--threads", type=int, default=0, help="libpimoe worker threads (0: all cores)")
    args = parser.parse_args()

    model = tiny_model(args.family, args.seed)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(args.seed))
    original_blocks = [layer.mlp for layer in model.model.layers]
    reference = logits(model, ids)

    # What the MoE blocks contribute: the logits with the blocks dropped.
    for layer in model.model.layers:
        layer.mlp = Dropped()
    without_moe = logits(model, ids)

    with tempfile.TemporaryDirectory() as checkpoint:
        for layer, block in zip(model.model.layers, original_blocks):
            layer.mlp = block
        model.save_pretrained(checkpoint)
        options = pimoe.Options(backend="cpu", threads=args.threads)
        layers = [pimoe.Model.import_hf(checkpoint, i, options) for i in range(len(model.model.layers))]
    try:
        # Block by block first: the same hidden states through the torch block and the libpimoe layer.
        hidden = torch.randn(2, 24, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            for i, (block, layer) in enumerate(zip(original_blocks, layers)):
                err = relative(block(hidden), PimoeMoeBlock(layer)(hidden))
                print(f"layer {i} MoE block: max |torch - libpimoe| / RMS = {err:.3g}")

        for layer, imported in zip(model.model.layers, layers):
            layer.mlp = PimoeMoeBlock(imported)
        swapped = logits(model, ids)
    finally:
        for layer in layers:
            layer.close()

    err = relative(reference, swapped)
    moe_effect = relative(reference, without_moe)
    same_argmax = float((reference.argmax(-1) == swapped.argmax(-1)).float().mean())
    print(f"{args.family}: {len(layers)} MoE blocks swapped for libpimoe {pimoe.version()} ({layers[0].num_experts} "
          f"experts, top-{layers[0].top_k}, hidden {layers[0].hidden}); logits {tuple(reference.shape)}")
    print(f"  max |original - swapped| / RMS(original logits) = {err:.3g}  (tolerance {args.tolerance:g})")
    print(f"  max |original - MoE dropped| / RMS               = {moe_effect:.3g}  (what the blocks contribute)")
    print(f"  next-token argmax agreement                      = {same_argmax:.3f}")
    if not err <= args.tolerance or not moe_effect > 100 * args.tolerance:
        raise SystemExit("FAIL: the swapped model's logits are not within the tolerance")
    print("hf_moe_swap: ok")


if __name__ == "__main__":
    main()
