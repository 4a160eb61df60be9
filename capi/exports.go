package main

/*
#include "aioguest.h"
*/
import "C"

import (
	"unsafe"

	"github.com/aioguest/aioguest/internal/abi"
)

// Handles arrive as void* and become uintptr at once: internal/abi
// never turns a caller's integer back into a pointer.

//export ag_abi_version
func ag_abi_version() C.int { return C.int(abi.Version) }

//export ag_poller_open
func ag_poller_open(out *unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerOpen(out)
	return ret(code, msg, err, errlen)
}

//export ag_poller_close
func ag_poller_close(poller unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerClose(uintptr(poller))
	return ret(code, msg, err, errlen)
}

//export ag_poller_add
func ag_poller_add(poller unsafe.Pointer, fd C.int64_t, events C.uint32_t, tag C.uint32_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerAdd(uintptr(poller), int64(fd), uint32(events), uint32(tag))
	return ret(code, msg, err, errlen)
}

//export ag_poller_modify
func ag_poller_modify(poller unsafe.Pointer, fd C.int64_t, events C.uint32_t, tag C.uint32_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerModify(uintptr(poller), int64(fd), uint32(events), uint32(tag))
	return ret(code, msg, err, errlen)
}

//export ag_poller_remove
func ag_poller_remove(poller unsafe.Pointer, fd C.int64_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerRemove(uintptr(poller), int64(fd))
	return ret(code, msg, err, errlen)
}

//export ag_poller_wait
func ag_poller_wait(poller unsafe.Pointer, buf *C.ag_event, cap C.int32_t, timeout_ns C.int64_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerWait(uintptr(poller), events(buf, cap), int32(cap), int64(timeout_ns))
	return ret(code, msg, err, errlen)
}

//export ag_poller_wake
func ag_poller_wake(poller unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerWake(uintptr(poller))
	return ret(code, msg, err, errlen)
}

//export ag_poller_fd
func ag_poller_fd(poller unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.PollerFd(uintptr(poller))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_open
func ag_handoff_open(poller unsafe.Pointer, out *unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffOpen(uintptr(poller), out)
	return ret(code, msg, err, errlen)
}

//export ag_handoff_shutdown
func ag_handoff_shutdown(handoff unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffShutdown(uintptr(handoff))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_close
func ag_handoff_close(handoff unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffClose(uintptr(handoff))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_request
func ag_handoff_request(handoff unsafe.Pointer, timeout_ns C.int64_t, max_events C.int32_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffRequest(uintptr(handoff), int64(timeout_ns), int32(max_events))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_request_into
func ag_handoff_request_into(handoff unsafe.Pointer, timeout_ns C.int64_t, buf *C.ag_event, cap C.int32_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffRequestInto(uintptr(handoff), int64(timeout_ns), events(buf, cap), int32(cap))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_next
func ag_handoff_next(handoff unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffNext(uintptr(handoff))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_take
func ag_handoff_take(handoff unsafe.Pointer, buf *C.ag_event, cap C.int32_t, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffTake(uintptr(handoff), events(buf, cap), int32(cap))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_wake
func ag_handoff_wake(handoff unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffWake(uintptr(handoff))
	return ret(code, msg, err, errlen)
}

//export ag_handoff_spawn
func ag_handoff_spawn(handoff unsafe.Pointer, notify C.ag_notify_fn, arg unsafe.Pointer, err *C.char, errlen C.size_t) C.int {
	code, msg := abi.HandoffSpawn(uintptr(handoff), unsafe.Pointer(notify), arg)
	return ret(code, msg, err, errlen)
}
