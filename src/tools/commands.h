/* SPDX-License-Identifier: MIT */
// The subcommands of `pimoe` (src/tools/pimoe_main.cpp): each adds itself to the CLI11 application, with its options
// and its --help, and sets `status` (the program's exit status) when it runs.
#pragma once

#include <CLI/CLI.hpp>

namespace pimoe_tools {

void add_info_command(CLI::App &app, int &status);   // cmd_info.cpp
void add_run_command(CLI::App &app, int &status);    // cmd_run.cpp
void add_bench_command(CLI::App &app, int &status);  // cmd_bench.cpp

}  // namespace pimoe_tools
