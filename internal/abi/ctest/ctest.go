// Package ctest gives abi's tests what needs C (cgo is not allowed in
// _test.go files): a C notify function that counts its calls, and C
// memory to count in.  Only tests import it, so none of it is linked
// into the library.
package ctest

/*
#include <stdint.h>
#include <stdlib.h>

static void ag_test_count(void *arg) {
	__atomic_fetch_add((int32_t *)arg, 1, __ATOMIC_SEQ_CST);
}

static void *ag_test_count_fn(void) { return (void *)ag_test_count; }

static int32_t ag_test_load(void *arg) {
	return __atomic_load_n((int32_t *)arg, __ATOMIC_SEQ_CST);
}
*/
import "C"

import "unsafe"

// Counter is a C int32 in C memory (so it may be handed to C as a
// notify argument) and a C notify function incrementing it.
type Counter struct{ P unsafe.Pointer }

// NewCounter allocates a zeroed counter; Free releases it.
func NewCounter() Counter { return Counter{C.calloc(1, 4)} }

// Fn is the C function pointer void (*)(void *) that bumps the counter
// passed as its argument.
func (c Counter) Fn() unsafe.Pointer { return C.ag_test_count_fn() }

// Load reads the counter.
func (c Counter) Load() int32 { return int32(C.ag_test_load(c.P)) }

// Free releases the counter's memory.
func (c Counter) Free() { C.free(c.P) }
