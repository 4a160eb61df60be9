package abi

/*
#include <stdint.h>

typedef void (*ag_notify_fn)(void *);

// The handoff whose notify is running on this thread, or 0.  Thread-local
// because that is exactly the question ag_handoff_close must answer: is
// my caller the spawned thread itself (notify calling close)?  Go has no
// goroutine identity to ask, but a spawned worker is locked to its OS
// thread, and a callback from notify into Go runs on that same thread.
static __thread uintptr_t ag_notifying;

static void ag_call_notify(ag_notify_fn fn, void *arg, uintptr_t who) {
	uintptr_t outer = ag_notifying;
	ag_notifying = who;
	fn(arg);
	ag_notifying = outer;
}

static uintptr_t ag_current_notifier(void) {
	return ag_notifying;
}
*/
import "C"

import "unsafe"

// callNotify calls the C function pointer fn(arg), marking this thread
// as the notifier of handoff key for the duration.
func callNotify(fn, arg unsafe.Pointer, key uintptr) {
	C.ag_call_notify(C.ag_notify_fn(fn), arg, C.uintptr_t(key))
}

// currentNotifier returns the handoff whose notify is running on the
// calling thread, or 0.
func currentNotifier() uintptr {
	return uintptr(C.ag_current_notifier())
}
