// SPDX-License-Identifier: MIT
package pimoe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"libpimoe.org/pimoe/internal/cpimoe"
)

// Status is a libpimoe status code (pimoe_status). Codes are never renumbered.
type Status int32

// The status codes of pimoe.h.
const (
	StatusOK                 Status = 0  // PIMOE_OK
	StatusNullPointer        Status = 1  // PIMOE_ERR_NULL_POINTER: a required pointer argument was NULL
	StatusInvalidArgument    Status = 2  // PIMOE_ERR_INVALID_ARGUMENT: a size or value is out of range
	StatusSizeMismatch       Status = 3  // PIMOE_ERR_SIZE_MISMATCH: a buffer's element count does not match its shape
	StatusUnknownOption      Status = 4  // PIMOE_ERR_UNKNOWN_OPTION: an option key this library does not know
	StatusInvalidOption      Status = 5  // PIMOE_ERR_INVALID_OPTION: a known option given a bad value
	StatusNonFiniteInput     Status = 6  // PIMOE_ERR_NON_FINITE_INPUT: the input held NaN or Inf
	StatusBackendUnavailable Status = 7  // PIMOE_ERR_BACKEND_UNAVAILABLE: backend not compiled in or no device
	StatusOutOfMemory        Status = 8  // PIMOE_ERR_OUT_OF_MEMORY
	StatusNotFound           Status = 9  // PIMOE_ERR_NOT_FOUND: a named thing does not exist
	StatusIO                 Status = 10 // PIMOE_ERR_IO
	StatusFormat             Status = 11 // PIMOE_ERR_FORMAT
	StatusUnsupported        Status = 12 // PIMOE_ERR_UNSUPPORTED: valid request this build or backend cannot do
	StatusInternal           Status = 13 // PIMOE_ERR_INTERNAL: a bug in libpimoe
	StatusCallback           Status = 14 // PIMOE_ERR_CALLBACK: an expert callback failed, or has no callback set
)

// String gives the library's static text for the code (pimoe_status_string).
func (s Status) String() string {
	return cpimoe.Pimoe_status_string(cpimoe.Enum_SS_pimoe_status(s))
}

// Error is a failure reported by libpimoe: the status code, the library's message (captured inside the failed C
// call, so it is the message of this call even when goroutines share OS threads) and the C function that failed.
// Use errors.As to get it:
//
//	var perr *pimoe.Error
//	if errors.As(err, &perr) && perr.Status == pimoe.StatusSizeMismatch { ... }
type Error struct {
	Status  Status // never StatusOK
	Message string // pimoe_last_error() of the failed call, e.g. "top_k (9) exceeds num_experts (8)"
	Op      string // the C function that failed, e.g. "pimoe_create"
	// Err is the error (or recovered panic) of the Go expert callback that failed the call (Status is then
	// StatusCallback); nil otherwise. errors.Is / errors.As see it through Unwrap.
	Err error
}

// Unwrap gives the failed expert callback's own error (nil for other failures).
func (e *Error) Unwrap() error { return e.Err }

// Error formats the failure as "pimoe: OP: MESSAGE (STATUS TEXT)" (OP once, when MESSAGE starts with it).
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Status.String()
	} else {
		msg = msg + " (" + e.Status.String() + ")"
	}
	if e.Op != "" && !strings.HasPrefix(msg, e.Op+":") { // most library messages already start with the function
		msg = e.Op + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return "pimoe: " + msg
}

// Is reports whether target is an *Error with the same Status (Message and Op are not compared), so that
// errors.Is(err, &pimoe.Error{Status: pimoe.StatusNotFound}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// ErrClosed is returned (wrapped in nothing: compare with errors.Is) by every method of a Model after Close.
var ErrClosed = errors.New("pimoe: model is closed")

// decode turns the string a status-returning cgo call gives ("" or "<code>:<message>") into the status and message.
func decode(s string) (Status, string) {
	if s == "" {
		return StatusOK, ""
	}
	code, msg, found := strings.Cut(s, ":")
	n, err := strconv.Atoi(code)
	if !found || err != nil {
		return StatusInternal, "malformed status from the binding: " + strconv.Quote(s)
	}
	return Status(n), msg
}

// check converts the result of a status-returning cgo call into nil or an *Error.
func check(op string, s string) error {
	if s == "" {
		return nil
	}
	st, msg := decode(s)
	if st == StatusOK {
		return nil
	}
	return &Error{Status: st, Message: msg, Op: op}
}

// argError is an error found by the Go layer before calling C (a case the C ABI cannot see, such as two slices of
// different lengths that the C API takes with one count).
func argError(op string, st Status, format string, args ...interface{}) error {
	return &Error{Status: st, Message: fmt.Sprintf(format, args...), Op: op}
}
