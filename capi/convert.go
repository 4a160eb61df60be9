// Command capi is libaioguest: the C ABI declared in aioguest.h, built
// with -buildmode=c-shared.  This package only converts between C and
// Go; everything else lives in internal/abi.
package main

/*
#cgo CFLAGS: -I${SRCDIR}
#include "aioguest.h"
*/
import "C"

import (
	"unsafe"

	"github.com/aioguest/aioguest/internal/abi"
	"github.com/aioguest/aioguest/internal/poller"
)

func main() {}

// The caller's ag_event buffer is used directly as a []poller.Event, so
// the layouts must agree; a mismatch makes one of these array lengths
// negative and fails the build.
const (
	cSize  = unsafe.Sizeof(C.ag_event{})
	goSize = unsafe.Sizeof(poller.Event{})
)

var (
	_ [cSize - goSize]byte
	_ [goSize - cSize]byte
	_ [unsafe.Offsetof(C.ag_event{}.events) - unsafe.Offsetof(poller.Event{}.Events)]byte
	_ [unsafe.Offsetof(poller.Event{}.Events) - unsafe.Offsetof(C.ag_event{}.events)]byte
	_ [unsafe.Offsetof(C.ag_event{}.tag) - unsafe.Offsetof(poller.Event{}.Tag)]byte
	_ [unsafe.Offsetof(poller.Event{}.Tag) - unsafe.Offsetof(C.ag_event{}.tag)]byte
	_ [C.AG_ABI_VERSION - abi.Version]byte
	_ [abi.Version - C.AG_ABI_VERSION]byte
)

// events views the caller's buffer as a slice; nil for NULL or n <= 0
// (internal/abi rejects NULL with n > 0, and n < 0).
func events(buf *C.ag_event, n C.int32_t) []poller.Event {
	if buf == nil || n <= 0 {
		return nil
	}
	return unsafe.Slice((*poller.Event)(unsafe.Pointer(buf)), int(n))
}

// maxMsg bounds the message copy whatever errlen claims.
const maxMsg = 1 << 16

// ret writes msg into err (NUL-terminated, truncated to errlen-1 bytes)
// on failure, and returns code.  On success err is left untouched.
func ret(code int, msg string, err *C.char, errlen C.size_t) C.int {
	if code < 0 && err != nil && errlen > 0 {
		m := abi.Truncate(msg, int(min(errlen-1, maxMsg)))
		dst := unsafe.Slice((*byte)(unsafe.Pointer(err)), len(m)+1)
		copy(dst, m)
		dst[len(m)] = 0
	}
	return C.int(code)
}
