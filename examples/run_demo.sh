#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's demo command: installs what is missing, builds libpimoe (Release, in build/) and runs the demo
# layer (hidden 512, 8 experts, top-2) on the best available backend, printing its statistics.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/cmake/debian-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DPIMOE_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$root/build" --target pimoe_demo_c -j "$(nproc)" >/dev/null
exec "$root/build/examples/demo" "$@"
