package abi

import (
	"os"
	"runtime"
	"testing"
)

func TestSpareProcs(t *testing.T) {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && runtime.GOMAXPROCS(0) < minProcs {
		t.Fatalf("GOMAXPROCS is %d, want at least %d", runtime.GOMAXPROCS(0), minProcs)
	}
	if _, ok := procs("3", true); ok {
		t.Fatal("overrode the user's GOMAXPROCS")
	}
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	if n, ok := procs("", false); !ok || n != minProcs {
		t.Fatalf("procs with 2 Ps: %d, %v", n, ok)
	}
	runtime.GOMAXPROCS(minProcs + 1)
	if _, ok := procs("", false); ok {
		t.Fatal("lowered GOMAXPROCS")
	}
}
