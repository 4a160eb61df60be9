package abi

import (
	"fmt"
	"runtime/debug"
)

// guard runs one ABI call.  It returns f's result as (code >= 0, "") or
// (negative code, message).  A panic must never unwind into C (the
// runtime would abort the host process), so any panic in f becomes
// AG_EINTERNAL with the panic value and the top of the stack.
func guard(op string, f func() (int, error)) (code int, msg string) {
	defer func() {
		if r := recover(); r != nil {
			code = EINTERNAL
			msg = fmt.Sprintf("%s: internal error: panic: %v\n%s", op, r, stackTop())
		}
	}()
	n, err := f()
	if err != nil {
		return Code(err), message(op, err)
	}
	if n < 0 {
		// A negative success would read as an error code in C.
		return EINTERNAL, fmt.Sprintf("%s: internal error: negative result %d", op, n)
	}
	return n, ""
}

// stackTop keeps the message useful when truncated: the frames nearest
// the panic come first.
func stackTop() string {
	s := debug.Stack()
	const max = 2048
	if len(s) > max {
		s = s[:max]
	}
	return string(s)
}
