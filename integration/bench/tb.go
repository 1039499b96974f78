package main

import (
	"fmt"
	"os"
	"testing"
)

// benchTB lets the test helpers (registrytest) run in a plain program. They call only
// Helper, Fatal(f), Logf, TempDir and Cleanup; anything else is a bug of this program and
// panics through the nil embedded interface.
//
// Fatal cannot stop the calling goroutine the way testing does, so it records the failure
// and panics with it; run recovers that panic into an error after the cleanups ran.
type benchTB struct {
	testing.TB
	root     string
	cleanups []func()
}

// fatalError is the panic value of benchTB.Fatal, recovered by run.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }

func newBenchTB(root string) *benchTB { return &benchTB{root: root} }

func (b *benchTB) Helper()             {}
func (b *benchTB) Logf(string, ...any) {}
func (b *benchTB) Cleanup(f func())    { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) Fatal(args ...any)   { panic(fatalError{msg: fmt.Sprint(args...)}) }

func (b *benchTB) Fatalf(format string, args ...any) {
	panic(fatalError{msg: fmt.Sprintf(format, args...)})
}

// TempDir makes a directory under the bench work directory, removed with it at the end.
func (b *benchTB) TempDir() string {
	dir, err := os.MkdirTemp(b.root, "tb-")
	if err != nil {
		b.Fatalf("make temp dir under %s: %v", b.root, err)
	}
	return dir
}

// cleanup runs the registered cleanups, last first.
func (b *benchTB) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}
