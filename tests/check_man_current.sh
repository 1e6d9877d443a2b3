#!/bin/sh
# SPDX-License-Identifier: MIT
# docs/man/pimoe.1 is generated from pimoe's --help (docs/man/make_pimoe_man.sh, help2man) and committed: this check
# generates it again from the program just built and fails, with the difference, while the two differ in anything but
# the date of the .TH line (an option added, renamed or re-described without regenerating the page).
# usage: check_man_current.sh PIMOE_PROGRAM SOURCE_DIR WORK_DIR
set -eu
prog=${1:?pimoe program}
src=${2:?source dir}
work=${3:?work dir}
mkdir -p "$work"
sh "$src/docs/man/make_pimoe_man.sh" "$prog" "$work/pimoe.1"
strip_date() { sed 's/^\(\.TH [^ ]* "[^"]*"\) "[^"]*"/\1 DATE/' "$1"; }
strip_date "$src/docs/man/pimoe.1" >"$work/committed.1"
strip_date "$work/pimoe.1" >"$work/generated.1"
if ! diff -u "$work/committed.1" "$work/generated.1"; then
  echo "FAIL: docs/man/pimoe.1 is not what pimoe --help makes now; regenerate it:"
  echo "  sh docs/man/make_pimoe_man.sh $prog docs/man/pimoe.1"
  exit 1
fi
echo "ok: docs/man/pimoe.1 is what pimoe --help makes ($(wc -l <"$work/pimoe.1") lines)"
