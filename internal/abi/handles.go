package abi

import (
	"sync"
	"unsafe"

	pointer "github.com/mattn/go-pointer"
)

// Handles are go-pointer keys: one malloc'd byte per object, so a handle
// is a real C pointer, never a Go pointer (cgo forbids C from keeping
// those), and unique while the object lives.
//
// live indexes them by integer value.  Lookups go through it and never
// turn an integer from the caller into an unsafe.Pointer: a garbage
// handle that happened to point into the Go heap would otherwise be a
// "bad pointer" to the garbage collector and crash the process.  It also
// makes release idempotent: go-pointer's Unref frees unconditionally,
// so calling it twice would be a double free.
var handles struct {
	mu   sync.Mutex
	live map[uintptr]unsafe.Pointer
}

func newHandle(obj any) unsafe.Pointer {
	p := pointer.Save(obj)
	handles.mu.Lock()
	if handles.live == nil {
		handles.live = make(map[uintptr]unsafe.Pointer)
	}
	handles.live[uintptr(p)] = p
	handles.mu.Unlock()
	return p
}

// lookup returns the object behind h, or nil for an unknown handle.
func lookup(h uintptr) any {
	handles.mu.Lock()
	p, ok := handles.live[h]
	handles.mu.Unlock()
	if !ok {
		return nil
	}
	return pointer.Restore(p)
}

// release forgets h and frees its key.  After this, malloc may hand the
// same address to the next handle: callers must drop closed handles.
func release(h uintptr) {
	handles.mu.Lock()
	p, ok := handles.live[h]
	delete(handles.live, h)
	handles.mu.Unlock()
	if ok {
		pointer.Unref(p)
	}
}

// liveHandles is for tests: how many handles are open.
func liveHandles() int {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	return len(handles.live)
}
