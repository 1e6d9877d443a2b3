/* SPDX-License-Identifier: MIT */
// pimoe-info's view of a Hugging Face checkpoint folder: what config.json says, and which layers import.
#pragma once

#include <string>

// Prints the family, dims, routing settings, dtype and size of the checkpoint in `dir`, then tries
// pimoe_import_hf() on every decoder layer (with `weight_dtype` when not null), printing each imported layer's
// quantisation error. Returns the exit status: 0 when at least one layer imports, 1 otherwise.
int describe_checkpoint(const std::string &dir, const char *weight_dtype);
