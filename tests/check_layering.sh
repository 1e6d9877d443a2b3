#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks the layering of the source tree by scanning #include lines (docs/design.md, "The rooms"):
#   1. the C shims (src/api*.cpp, src/api*.h) include no backend header;
#   2. only src/backend_registry.cpp names backends: no other file of src/ includes a backend's header or mentions a
#      backend family or a PIMOE_HAVE_<BACKEND> switch;
#   3. a backend (backends/<name>/) includes no other backend, and of src/ only the backend interface and the runtime
#      helpers (backend.h and what it includes, error.h, dtype.h, thread_pool.h, host_parallel.h);
#   4. bindings and examples include only the public headers (pimoe/*.h, pimoe/*.hpp) and system headers.
# usage: check_layering.sh SOURCE_DIR        Exits 1 and lists every offending line when a rule is broken.
set -euo pipefail
root=${1:?source dir}
cd "$root"
fail=0
offend() { echo "FAIL ($1): $2"; fail=1; }

# Quoted includes of a set of files: "file:line:target".
includes() { grep -HnoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$@" 2>/dev/null |
             sed -E 's/#[[:space:]]*include[[:space:]]*"([^"]+)"/\1/; s/:[[:space:]]+/:/' || true; }

backends=$(cd backends && ls -d */ | tr -d /)
[ -n "$backends" ] || { echo "FAIL: no backends found under $root/backends"; exit 1; }

# 1 and 2
mapfile -t src_files < <(git ls-files 'src/*.cpp' 'src/*.h' 2>/dev/null || find src -name '*.cpp' -o -name '*.h')
for f in "${src_files[@]}"; do
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    target=${hit##*:}
    case "$target" in backends/*) offend "src includes a backend" "$hit" ;; esac
  done < <(includes "$f")
  [ "$f" = src/backend_registry.cpp ] && continue
  for b in $backends; do
    upper=$(echo "$b" | tr a-z A-Z)
    if grep -nE "\b${b}_backend_family\b|\bPIMOE_HAVE_${upper}\b" "$f" >/dev/null; then
      offend "only the registry names backends" "$f: $(grep -nE "\b${b}_backend_family\b|\bPIMOE_HAVE_${upper}\b" "$f" | head -1)"
    fi
  done
done

# 3
allowed_src='^src/(backend|layer_config|option_table|compact_matrix|route_plan|weights|error|dtype|thread_pool|host_parallel)\.h$'
for b in $backends; do
  mapfile -t files < <(find "backends/$b" -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.c' \))
  for f in "${files[@]}"; do
    while IFS= read -r hit; do
      [ -n "$hit" ] || continue
      target=${hit##*:}
      case "$target" in
        src/*) [[ "$target" =~ $allowed_src ]] || offend "a backend includes src/ beyond its interface" "$hit" ;;
        backends/*) [[ "$target" == backends/$b/* ]] || offend "a backend includes another backend" "$hit" ;;
        ../*) offend "a backend includes outside its folder by a relative path" "$hit" ;;
      esac
    done < <(includes "$f")
  done
done

# 4
mapfile -t files < <(find bindings examples -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.i' \))
for f in "${files[@]}"; do
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    target=${hit##*:}
    case "$target" in
      pimoe/pimoe.h | pimoe/pimoe.hpp | pimoe/pimoe_cuda.h | pimoe/pimoe_export.h) ;;
      pimoe/pimoe_status.h | pimoe/pimoe_options.h | pimoe/pimoe_model.h | pimoe/pimoe_stats.h) ;;
      pimoe/pimoe_tensors.h | pimoe/pimoe_backends.h) ;;
      *) # a header of the binding's or example's own folder is fine; anything of the library's inside is not
         dir=$(dirname "$f")
         if [ -f "$dir/$target" ] && [[ "$(cd "$dir" && realpath "$target")" != "$(realpath "$root")"/src/* ]]; then :; else
           offend "bindings and examples include only the public header" "$hit"
         fi ;;
    esac
  done < <(includes "$f")
done

[ "$fail" = 0 ] && echo "layering holds: shims, registry, $(echo $backends | wc -w) backends, bindings and examples checked"
exit "$fail"
