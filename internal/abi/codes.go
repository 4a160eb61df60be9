// Package abi is everything behind capi/aioguest.h except the C type
// conversions: handle table, kind checks, error codes, messages and the
// panic guard.  Its signatures use Go types only (handles travel as
// uintptr) so it can be tested and fuzzed without a C caller.
package abi

import (
	"errors"
	"fmt"
	"syscall"
	"unicode/utf8"

	"github.com/aioguest/aioguest/internal/poller"
)

// Version is AG_ABI_VERSION.
const Version = 2

// Codes, as in capi/aioguest.h.  OS errors are -errno, in [-4095, -1].
const (
	ErrBase      = -10000
	EINVAL       = -10001
	EBADHANDLE   = -10002
	EEXIST       = -10003
	ENOENT       = -10004
	EBUSY        = -10005
	ECLOSED      = -10006
	EUNSUPPORTED = -10007
	EINTERNAL    = -10008
	maxErrno     = 4095
)

// ErrBadHandle: NULL, unknown, closed or wrong-kind handle.
var ErrBadHandle = errors.New("bad handle (NULL, unknown, closed or wrong kind)")

// Code maps an error to its C return value.  Anything unrecognised is
// AG_EINTERNAL: a code the caller cannot interpret must not pass for a
// plausible errno.
func Code(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrBadHandle):
		return EBADHANDLE
	case errors.Is(err, poller.ErrInvalid):
		return EINVAL
	case errors.Is(err, poller.ErrExist):
		return EEXIST
	case errors.Is(err, poller.ErrNotExist):
		return ENOENT
	case errors.Is(err, poller.ErrBusy):
		return EBUSY
	case errors.Is(err, poller.ErrClosed):
		return ECLOSED
	case errors.Is(err, poller.ErrUnsupported):
		return EUNSUPPORTED
	}
	// syscall.Errno is unix.Errno on every Unix, and exists on Windows
	// too, so this file stays portable.
	var errno syscall.Errno
	if errors.As(err, &errno) && errno > 0 && errno <= maxErrno {
		return -int(errno)
	}
	return EINTERNAL
}

// message formats the text written to the caller's err buffer.
func message(op string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("%s: %v (errno %d)", op, err, int(errno))
	}
	return op + ": " + err.Error()
}

// Truncate returns the longest prefix of msg that fits in n bytes, is
// valid UTF-8 and holds no NUL (the C side NUL-terminates it, and a
// message cut inside a multi-byte character would not decode).
func Truncate(msg string, n int) string {
	for i := 0; i < len(msg); i++ {
		if msg[i] == 0 {
			msg = msg[:i]
			break
		}
	}
	if n <= 0 {
		return ""
	}
	if !utf8.ValidString(msg) {
		msg = toValidUTF8(msg)
	}
	if len(msg) <= n {
		return msg
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
}

func toValidUTF8(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r) // invalid bytes decode as U+FFFD
	}
	return string(out)
}
