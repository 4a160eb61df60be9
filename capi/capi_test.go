package main

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/aioguest/aioguest/internal/abi"
	"github.com/aioguest/aioguest/internal/poller"
)

// buildLib builds the library as the Makefile does, into a temp dir.
func buildLib(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the c-shared library")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the smoke test is Linux-only for now")
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "libaioguest.so")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.CommandContext(ctx, gocmd, "build", "-buildmode=c-shared", "-trimpath",
		"-ldflags", "-s -w", "-o", lib, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return lib
}

// headerFunctions lists the functions declared in aioguest.h.
func headerFunctions(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("aioguest.h")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^int (ag_\w+)\(`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return names
}

func TestLibrary(t *testing.T) {
	lib := buildLib(t)

	t.Run("exports", func(t *testing.T) {
		// What nm -D shows: the dynamic symbol table.  Every ag_*
		// symbol must be a header function and vice versa.  (The Go
		// runtime's cgo glue, x_cgo_* / _cgo_* / crosscall2, is
		// exported too; hiding it needs a linker version script.)
		f, err := elf.Open(lib)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		syms, err := f.DynamicSymbols()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range syms {
			if strings.HasPrefix(s.Name, "ag_") && s.Section != elf.SHN_UNDEF &&
				elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				got = append(got, s.Name)
			}
		}
		slices.Sort(got)
		want := headerFunctions(t)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("exported ag_* symbols:\n  %v\nheader declares:\n  %v", got, want)
		}
	})

	t.Run("smoke.c", func(t *testing.T) {
		cc, err := exec.LookPath("cc")
		if err != nil {
			t.Skip("no C compiler")
		}
		dir := filepath.Dir(lib)
		bin := filepath.Join(dir, "smoke")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cc, "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Werror",
			"-I.", "-o", bin, "testdata/smoke.c", "-L"+dir, "-laioguest",
			"-Wl,-rpath,"+dir, "-lpthread")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cc: %v\n%s", err, out)
		}
		out, err := exec.CommandContext(ctx, bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("smoke: %v\n%s", err, out)
		}
	})
}

// The header is the contract; the Go side must not drift from it.
func TestHeaderConstantsMatchGo(t *testing.T) {
	src, err := os.ReadFile("aioguest.h")
	if err != nil {
		t.Fatal(err)
	}
	defines := map[string]int{}
	re := regexp.MustCompile(`(?m)^#define AG_(\w+)\s+\(?(-?\d+)u?\)?`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatal(err)
		}
		defines[m[1]] = v
	}
	want := map[string]int{
		"ABI_VERSION": abi.Version, "READ": int(poller.Read), "WRITE": int(poller.Write),
		"ERR_BASE": abi.ErrBase, "EINVAL": abi.EINVAL, "EBADHANDLE": abi.EBADHANDLE,
		"EEXIST": abi.EEXIST, "ENOENT": abi.ENOENT, "EBUSY": abi.EBUSY,
		"ECLOSED": abi.ECLOSED, "EUNSUPPORTED": abi.EUNSUPPORTED, "EINTERNAL": abi.EINTERNAL,
	}
	if len(defines) != len(want) {
		t.Errorf("header defines %v, the test knows %v", defines, want)
	}
	for name, v := range want {
		if got, ok := defines[name]; !ok || got != v {
			t.Errorf("AG_%s: header %d (present %v), Go %d", name, got, ok, v)
		}
	}
	if size := unsafe.Sizeof(poller.Event{}); size != 16 {
		t.Errorf("poller.Event is %d bytes, ag_event is 16", size)
	}
}
