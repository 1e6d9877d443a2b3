// SPDX-License-Identifier: MIT

// Package pimoe runs token-level routed Mixture-of-Experts layers through libpimoe's C API.
//
// It builds with cgo against an installed libpimoe found by pkg-config (`pkg-config pimoe`):
//
//	m, err := pimoe.New(&pimoe.Options{Hidden: 512, NumExperts: 8, TopK: 2, Backend: "cpu"})
//	if err != nil {
//		log.Fatal(err) // a *pimoe.Error: Status and the library's Message
//	}
//	defer m.Close()
//	out, err := m.Forward(input, batch, seq) // input: batch*seq*512 float32, row-major
//
// A Model may be used from any number of goroutines at once. Errors from the library are *Error values carrying
// the status code and the library's message (use errors.As); every method of a closed Model returns ErrClosed.
package pimoe

import (
	"libpimoe.org/pimoe/internal/cpimoe"
)

// HeaderVersion is the version of the pimoe.h this package was compiled against; Version is the library's.
const HeaderVersion = cpimoe.PIMOE_VERSION_STRING

// Version is the library's version, "MAJOR.MINOR.PATCH" (pimoe_version_string).
func Version() string { return cpimoe.Pimoe_version_string() }

// VersionNumber is the library's MAJOR*10000 + MINOR*100 + PATCH (pimoe_version_number).
func VersionNumber() uint32 { return uint32(cpimoe.Pimoe_version_number()) }

// ABIVersion is the library's ABI major version, the N of libpimoe.so.N (pimoe_abi_version).
func ABIVersion() uint32 { return uint32(cpimoe.Pimoe_abi_version()) }

// BuildInfo is one line describing the library's build: backends, BLAS, compiler (pimoe_build_info).
func BuildInfo() string { return cpimoe.Pimoe_build_info() }

// Backends lists the backends compiled into the library, in order of preference.
func Backends() []string {
	n := cpimoe.Pimoe_backend_count()
	names := make([]string, 0, n)
	for i := 0; i < n; i++ {
		names = append(names, cpimoe.Pimoe_backend_name(i))
	}
	return names
}

// ProbeBackend says whether a backend ("cpu", "cuda", "vulkan", "vulkan:N", "auto") can run here; when it cannot,
// reason says why. An unknown name is an *Error with StatusNotFound.
func ProbeBackend(name string) (usable bool, reason string, err error) {
	var u int32
	st, msg := decode(cpimoe.Pimoe_backend_probe(name, &u))
	if st != StatusOK {
		return false, "", &Error{Status: st, Message: msg, Op: "pimoe_backend_probe"}
	}
	if u != 0 {
		return true, "", nil
	}
	return false, msg, nil
}

// BackendDevice describes the device a backend would use here (e.g. "cpu: 2 threads, OpenBLAS ..."). An unknown or
// unusable backend is an *Error with StatusNotFound or StatusBackendUnavailable.
func BackendDevice(name string) (string, error) {
	if d := cpimoe.Pimoe_backend_device(name); d != "" {
		return d, nil
	}
	usable, reason, err := ProbeBackend(name)
	if err != nil {
		return "", err
	}
	if !usable {
		return "", &Error{Status: StatusBackendUnavailable, Message: reason, Op: "pimoe_backend_device"}
	}
	return "", &Error{Status: StatusInternal, Message: "backend " + name + " is usable but has no description",
		Op: "pimoe_backend_device"}
}
