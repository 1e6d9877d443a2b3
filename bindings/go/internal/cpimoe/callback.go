// SPDX-License-Identifier: MIT
package cpimoe

// The Go side of callback experts (pimoe_expert_fn). The C side is in ../../pimoe_go.i: pimoe_go_expert_fn calls
// pimoeGoExpertTrampoline below with user_data, a runtime/cgo.Handle of an ExpertFunc.

/*
#include <stdint.h>
extern int pimoe_go_note_callback_failure(uint64_t token);
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ExpertFunc computes a callback expert: output [rows, hidden] from input [rows, hidden]. Both slices alias the
// library's buffers and are valid only during the call. A non-nil error fails the forward call.
type ExpertFunc func(expert int, input []float32, rows, hidden int, output []float32) error

var (
	callbackErrors sync.Map // token (uint64) -> error, until TakeCallbackError
	callbackTokens atomic.Uint64
)

// NewCallbackHandle registers fn for pimoe_go_*_set_expert_callback; free it with DeleteCallbackHandle once no model
// can call it any more.
func NewCallbackHandle(fn ExpertFunc) uintptr { return uintptr(cgo.NewHandle(fn)) }

// DeleteCallbackHandle frees a handle of NewCallbackHandle.
func DeleteCallbackHandle(h uintptr) { cgo.Handle(h).Delete() }

// TakeCallbackError gives (and forgets) the error stored under a token that pimoe_go_forward returned.
func TakeCallbackError(token uint64) error {
	if token == 0 {
		return nil
	}
	if err, ok := callbackErrors.LoadAndDelete(token); ok {
		return err.(error)
	}
	return nil
}

func noteFailure(err error) {
	token := callbackTokens.Add(1)
	callbackErrors.Store(token, err)
	if C.pimoe_go_note_callback_failure(C.uint64_t(token)) == 0 {
		callbackErrors.Delete(token) // an earlier callback of the same call failed first: its error is reported
	}
}

//export pimoeGoExpertTrampoline
func pimoeGoExpertTrampoline(handle C.uintptr_t, expert C.int32_t, input *C.float, rows, hidden C.int64_t,
	output *C.float) (rc C.int) {
	defer func() {
		if p := recover(); p != nil { // a panic must not unwind through the C frames
			noteFailure(fmt.Errorf("expert %d callback panicked: %v", int(expert), p))
			rc = 1
		}
	}()
	fn, ok := cgo.Handle(handle).Value().(ExpertFunc)
	if !ok || fn == nil {
		noteFailure(fmt.Errorf("expert %d: no Go callback registered", int(expert)))
		return 1
	}
	n := int(rows) * int(hidden)
	var in, out []float32
	if n > 0 {
		in = unsafe.Slice((*float32)(unsafe.Pointer(input)), n)
		out = unsafe.Slice((*float32)(unsafe.Pointer(output)), n)
	}
	if err := fn(int(expert), in, int(rows), int(hidden), out); err != nil {
		noteFailure(err)
		return 1
	}
	return 0
}
