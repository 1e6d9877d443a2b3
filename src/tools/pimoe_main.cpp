// SPDX-License-Identifier: MIT
// pimoe: the installed command of libpimoe. Subcommands: info (what a layer is), run (a layer on .npy inputs),
// bench (timing with the machine's same-run GEMM rate and bandwidth). `pimoe --help` and `pimoe SUBCOMMAND --help`
// list the options; docs/man/pimoe.1 is generated from them (help2man).
// Exit status: 0 on success, 1 when the work fails (a file that does not load, an input that does not fit), 2 on a
// usage error.
#include <pimoe/pimoe.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "tools/commands.h"

namespace {
// "-o, --output-format" rather than CLI11's "-o,--output-format": the form man pages use, and that the installed-package
// test looks for in the generated page's OPTIONS section.
class Formatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option *opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (size_t at = name.find(','); at != std::string::npos; at = name.find(',', at + 2)) name.insert(at + 1, " ");
    return name;
  }
};
}  // namespace

int main(int argc, char **argv) {
  CLI::App app{"pimoe: inspect, run and benchmark routed Mixture-of-Experts layers with libpimoe", "pimoe"};
  // The version of the libpimoe it runs with (not the headers it was built with): one command checks an install.
  app.set_version_flag("--version", std::string("pimoe (libpimoe) ") + pimoe_version_string(),
                       "Print the version of libpimoe and exit");
  app.require_subcommand(1);
  app.formatter(std::make_shared<Formatter>());  // before the subcommands: they take the application's formatter
  int status = 0;
  pimoe_tools::add_info_command(app, status);
  pimoe_tools::add_run_command(app, status);
  pimoe_tools::add_bench_command(app, status);
  app.footer("Run 'pimoe SUBCOMMAND --help' for the options of each subcommand.");  // after them: theirs stay empty
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    app.exit(e);  // prints the message and the hint to --help
    return 2;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "pimoe: %s\n", e.what());
    return 1;
  }
  return status;
}
