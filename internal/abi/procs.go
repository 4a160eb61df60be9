package abi

import (
	"os"
	"runtime"
)

// minProcs is the fewest Ps the library runs with (see init).
const minProcs = 8

// Every thread that calls into the library from C (a host thread, a lent
// worker) keeps its P while it is back in C, as if in a system call, and
// its goroutine never reschedules; so every 10 ms the runtime's monitor
// thread (sysmon) takes that P away (runtime/proc.go, retake: a P on the
// same schedtick for forcePreemptNS).  With no idle P left (GOMAXPROCS=2
// on a 2-CPU machine, with a host and a worker), the P goes to a spinning
// M, and the thread's next call finds none: its goroutine is locked to it,
// so it sleeps until another M hands one back, a round of thread wake-ups
// on every wake-up's path.  Idle Ps cost nothing (a P is a scheduler
// slot, not a thread), so a few spare ones let that next call pick one up
// at once.  Measured in docs/performance.md.  A GOMAXPROCS the user set
// in the environment is left alone.
func init() {
	if n, ok := procs(os.LookupEnv("GOMAXPROCS")); ok {
		runtime.GOMAXPROCS(n)
	}
}

// procs says what GOMAXPROCS to set, if any.
func procs(_ string, userSet bool) (int, bool) {
	if userSet {
		return 0, false
	}
	n := runtime.GOMAXPROCS(0)
	if n >= minProcs {
		return 0, false
	}
	return minProcs, true
}
