#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks the shared library's dynamic symbol table and SONAME against the public headers.
#   usage: check_exports.sh LIBRARY PIMOE_H
# - every defined dynamic symbol is pimoe_* (linker-generated _init/_fini/_edata/_end/__bss_start and the
#   version-node symbol of the export map are ignored);
# - every function that a public header (every *.h beside PIMOE_H: pimoe.h, the topic headers it includes,
#   pimoe_cuda.h) declares with PIMOE_API is exported as a function;
# - the SONAME is libpimoe.so.<PIMOE_ABI_VERSION>, the number in pimoe.h.
set -euo pipefail

lib=${1:?library}
version_header=${2:?pimoe.h}
mapfile -t headers < <(find "$(dirname "$version_header")" -maxdepth 1 -name '*.h' | sort)
fail=0

command -v nm >/dev/null || { echo "nm not found"; exit 1; }

# ----------------------------------------------------------------- exported symbols
# nm -D prints "ADDRESS TYPE NAME" (NAME may carry @VERSION or @@VERSION).
mapfile -t rows < <(nm -D --defined-only "$lib" | awk 'NF >= 3 {print $2 " " $3}')
if [ "${#rows[@]}" -eq 0 ]; then
  echo "FAIL: no defined dynamic symbols in $lib"
  exit 1
fi
declare -A exported_funcs=()
bad=()
for row in "${rows[@]}"; do
  type=${row%% *}
  name=${row#* }
  name=${name%%@*}
  case "$name" in
    _init|_fini|_edata|_end|__bss_start) continue ;;
  esac
  # The version node of the export map (e.g. PIMOE_0) shows up as an absolute symbol.
  if [ "$type" = "A" ]; then continue; fi
  case "$name" in
    pimoe_*) ;;
    *) bad+=("$type $name") ;;
  esac
  if [ "$type" = "T" ] || [ "$type" = "t" ] || [ "$type" = "i" ]; then exported_funcs[$name]=1; fi
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "FAIL: ${#bad[@]} exported symbol(s) outside the pimoe_ namespace:"
  printf '  %s\n' "${bad[@]}" | head -50
  fail=1
else
  echo "ok: all ${#rows[@]} defined dynamic symbols are pimoe_* (or linker-generated)"
fi

# ----------------------------------------------------------------- header functions are exported
# Join each header into one line, find "PIMOE_API <return type> pimoe_name(" declarations.
mapfile -t declared < <(for h in "${headers[@]}"; do tr '\n' ' ' <"$h"; echo; done | grep -oE 'PIMOE_API[^;(]*\(' | grep -oE 'pimoe_[A-Za-z0-9_]+[[:space:]]*\($' |
  sed -E 's/[[:space:]]*\($//' | sort -u)
if [ "${#declared[@]}" -lt 10 ]; then
  echo "FAIL: found only ${#declared[@]} PIMOE_API functions in ${headers[*]}: the parser is broken"
  fail=1
fi
missing=()
for f in "${declared[@]}"; do
  [ -n "${exported_funcs[$f]:-}" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "FAIL: ${#missing[@]} function(s) declared in the public headers are not exported:"
  printf '  %s\n' "${missing[@]}"
  fail=1
else
  echo "ok: all ${#declared[@]} functions declared in the ${#headers[@]} public headers are exported"
fi
# Exported but undeclared pimoe_* functions are not an error (the header may lag a private helper), but say so.
declare -A declared_set=()
for f in "${declared[@]}"; do declared_set[$f]=1; done
extra=()
for f in "${!exported_funcs[@]}"; do
  [ -n "${declared_set[$f]:-}" ] || extra+=("$f")
done
if [ "${#extra[@]}" -gt 0 ]; then
  echo "note: exported pimoe_* functions not declared in the public headers:"
  printf '  %s\n' "${extra[@]}" | sort
fi

# ----------------------------------------------------------------- SONAME
abi=$(sed -nE 's/^#define[[:space:]]+PIMOE_ABI_VERSION[[:space:]]+([0-9]+).*/\1/p' "$version_header")
if [ -z "$abi" ]; then
  echo "FAIL: no PIMOE_ABI_VERSION in $version_header"
  fail=1
else
  if command -v readelf >/dev/null; then
    soname=$(readelf -d "$lib" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p')
  else
    soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
  fi
  if [ "$soname" = "libpimoe.so.$abi" ]; then
    echo "ok: SONAME $soname"
  else
    echo "FAIL: SONAME is '$soname', expected 'libpimoe.so.$abi'"
    fail=1
  fi
fi

exit $fail
