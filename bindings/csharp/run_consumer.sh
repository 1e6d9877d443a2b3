#!/bin/sh
# SPDX-License-Identifier: MIT
# The C# example built and run against the INSTALLED libpimoe: installs the build tree into a prefix under the build
# directory, compiles examples/csharp/Example.cs against the installed Pimoe.dll, runs it with LD_LIBRARY_PATH set to
# the prefix only, and checks (LD_DEBUG) that the libpimoe.so and libpimoe_csharp.so loaded are the installed ones;
# and that the assembly's XML documentation, Pimoe.xml, is installed beside Pimoe.dll.
# With NUGET, XBUILD and NUPKG: the README's NuGet commands, offline: NUPKG (made by `nuget pack`) is put in a folder
# feed, examples/csharp/Example.csproj restores it from there (`nuget restore packages.config -Source FEED`), xbuild
# builds it, and Example.exe runs with no LD_LIBRARY_PATH, loading the natives the package copied beside it.
# Usage: run_consumer.sh BUILD_DIR SOURCE_DIR CMAKE MCS MONO WORK_DIR [CONFIG [NUGET XBUILD NUPKG]]
set -eu
build=$1 src=$2 cmake=$3 mcs=$4 mono=$5 work=$6 config=${7:-}
nuget=${8:-} xbuild=${9:-} nupkg=${10:-}
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"
if [ -n "$config" ]; then
  "$cmake" --install "$build" --prefix "$prefix" --config "$config" >"$work/install.log"
else
  "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
fi
libdir=$(cd "$prefix" && ls -d lib lib64 lib/* 2>/dev/null | while read -r d; do
  [ -e "$prefix/$d/libpimoe_csharp.so" ] && echo "$prefix/$d" && break; done)
[ -n "$libdir" ] || { echo "libpimoe_csharp.so not installed under $prefix"; cat "$work/install.log"; exit 1; }
dll=$libdir/cli/pimoe/Pimoe.dll
[ -f "$dll" ] || { echo "Pimoe.dll not installed at $dll"; exit 1; }
# Its XML documentation beside it, where IDEs look for it.
grep -qF '<member name="T:Pimoe.Model">' "${dll%.dll}.xml" ||
  { echo "Pimoe.xml (the assembly's documentation) not installed beside $dll, or without Pimoe.Model"; exit 1; }

# Build from the installed assembly only (a copy beside the program, as an application would ship it).
mkdir -p "$work/app"
cp "$dll" "$work/app/"
"$mcs" -nologo -warnaserror+ -target:exe -out:"$work/app/Example.exe" -r:"$work/app/Pimoe.dll" \
  "$src/examples/csharp/Example.cs"

LD_LIBRARY_PATH=$libdir LD_DEBUG=libs "$mono" "$work/app/Example.exe" >"$work/run.out" 2>"$work/ld_debug.log" ||
  { cat "$work/run.out"; tail -n 40 "$work/ld_debug.log"; exit 1; }
cat "$work/run.out"
grep -q '^ok$' "$work/run.out"
for lib in libpimoe_csharp.so libpimoe.so.0; do
  if ! grep -q "calling init: $libdir/$lib" "$work/ld_debug.log"; then
    echo "FAIL: $lib was not loaded from the install prefix ($libdir):"
    grep "calling init: .*$lib" "$work/ld_debug.log" || true
    exit 1
  fi
  echo "loaded from the prefix: $libdir/$lib"
done
if grep "calling init: .*libpimoe" "$work/ld_debug.log" | grep -v "$libdir/" | grep -q .; then
  echo "FAIL: a libpimoe library was loaded from outside the prefix:"
  grep "calling init: .*libpimoe" "$work/ld_debug.log"
  exit 1
fi

if [ -n "$nuget" ]; then
  echo "== the NuGet package $(basename "$nupkg") from a local folder feed"
  version=${nupkg##*/Pimoe.}
  version=${version%.nupkg}
  grep -qF "packages\\Pimoe.$version\\lib" "$src/examples/csharp/Example.csproj" &&
    grep -q "id=\"Pimoe\" version=\"$version\"" "$src/examples/csharp/packages.config" ||
    { echo "FAIL: examples/csharp/Example.csproj or packages.config does not name Pimoe $version"; exit 1; }
  # Their own HOME: NuGet's machine cache and Mono's settings start empty (no package of an earlier build).
  mkdir -p "$work/feed" "$work/nuget-app" "$work/home"
  cp "$nupkg" "$work/feed/"
  cp "$src/examples/csharp/Example.cs" "$src/examples/csharp/Example.csproj" "$src/examples/csharp/packages.config" \
    "$work/nuget-app/"
  (cd "$work/nuget-app" && export HOME="$work/home" && unset LD_LIBRARY_PATH MONO_PATH &&
    "$nuget" restore packages.config -Source "$work/feed" -PackagesDirectory packages -NonInteractive &&
    "$xbuild" /nologo /v:minimal /p:Configuration=Release Example.csproj &&
    LD_DEBUG=libs "$mono" bin/Release/Example.exe >run.out 2>ld_debug.log) >"$work/nuget.log" 2>&1 ||
    { cat "$work/nuget.log" "$work/nuget-app/run.out"; tail -n 20 "$work/nuget-app/ld_debug.log"; exit 1; }
  cat "$work/nuget-app/run.out"
  grep -q '^ok$' "$work/nuget-app/run.out"
  out=$work/nuget-app/bin/Release
  for lib in libpimoe_csharp.so libpimoe.so.0; do
    grep -q "calling init: $out/$lib" "$work/nuget-app/ld_debug.log" ||
      { echo "FAIL: $lib was not loaded from the program's folder $out"; exit 1; }
    echo "loaded beside the program: $out/$lib"
  done
fi
echo "csharp consumer: ok"
