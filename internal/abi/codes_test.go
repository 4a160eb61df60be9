package abi

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/aioguest/aioguest/internal/poller"
)

func TestCodeMapping(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{ErrBadHandle, EBADHANDLE},
		{poller.ErrInvalid, EINVAL},
		{poller.ErrExist, EEXIST},
		{poller.ErrNotExist, ENOENT},
		{poller.ErrBusy, EBUSY},
		{poller.ErrClosed, ECLOSED},
		{poller.ErrUnsupported, EUNSUPPORTED},
		{fmt.Errorf("fd 3: %w", poller.ErrExist), EEXIST},
		{syscall.EBADF, -int(syscall.EBADF)},
		{syscall.EPERM, -int(syscall.EPERM)},
		{fmt.Errorf("epoll_ctl: %w", syscall.ENOMEM), -int(syscall.ENOMEM)},
		{syscall.Errno(4095), -4095},
		{syscall.Errno(4096), EINTERNAL}, // would collide with nothing, but is no errno
		{syscall.Errno(0), EINTERNAL},
		{errors.New("mystery"), EINTERNAL},
	} {
		if got := Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	// The AG_E* codes lie below the errno range, as the header says.
	for _, c := range []int{EINVAL, EBADHANDLE, EEXIST, ENOENT, EBUSY, ECLOSED, EUNSUPPORTED, EINTERNAL} {
		if c >= ErrBase || c < EINTERNAL {
			t.Errorf("code %d outside (AG_EINTERNAL .. AG_ERR_BASE)", c)
		}
	}
}

func TestMessage(t *testing.T) {
	if m := message("ag_poller_add", fmt.Errorf("fd 3: %w", syscall.EBADF)); !strings.Contains(m, "ag_poller_add: fd 3: bad file descriptor") || !strings.Contains(m, "errno 9") {
		t.Errorf("message = %q", m)
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"hello", -1, ""},
		{"héllo", 2, "h"}, // never split the two bytes of é
		{"héllo", 3, "hé"},
		{"€uro", 2, ""},
		{"a\x00b", 10, "a"},
		{"a\xffb", 10, "a\uFFFDb"},
	} {
		got := Truncate(c.in, c.n)
		if got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if !utf8.ValidString(got) || (c.n >= 0 && len(got) > c.n) {
			t.Errorf("Truncate(%q, %d) = %q: invalid or too long", c.in, c.n, got)
		}
	}
}

func TestGuardRecoversPanics(t *testing.T) {
	var nilMap map[string]int
	var nilPtr *poller.Poller
	for name, f := range map[string]func() (int, error){
		"value":      func() (int, error) { panic("boom") },
		"nil map":    func() (int, error) { nilMap["x"] = 1; return 0, nil },
		"nil ptr":    func() (int, error) { return 0, nilPtr.Close() },
		"panic(nil)": func() (int, error) { panic(nil) },
		"error":      func() (int, error) { panic(errors.New("boom")) },
	} {
		code, msg := guard("ag_test_op", f)
		if code != EINTERNAL || !strings.HasPrefix(msg, "ag_test_op: internal error: panic:") {
			t.Errorf("%s: guard = %d, %q", name, code, msg)
		}
	}
	if code, msg := guard("ag_test_op", func() (int, error) { return -3, nil }); code != EINTERNAL {
		t.Errorf("negative success: %d, %q", code, msg)
	}
	if code, msg := guard("ag_test_op", func() (int, error) { return 7, nil }); code != 7 || msg != "" {
		t.Errorf("success: %d, %q", code, msg)
	}
	if code, msg := guard("ag_test_op", func() (int, error) { return 7, poller.ErrBusy }); code != EBUSY || msg == "" {
		t.Errorf("failure: %d, %q", code, msg)
	}
}
