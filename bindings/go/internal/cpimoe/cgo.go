// SPDX-License-Identifier: MIT

// Package cpimoe is the SWIG-generated low-level binding of libpimoe's C API (pimoe.go and pimoe_wrap.c are
// generated next to this file by `swig -go -cgo -intgosize 64 -package cpimoe bindings/pimoe.i`). It is internal:
// use package pimoe.
package cpimoe

// #cgo pkg-config: pimoe
import "C"
