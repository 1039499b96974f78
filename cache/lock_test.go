package cache

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestSecondWriterIsLockedOut(t *testing.T) {
	dir := t.TempDir()
	first := openCache(t, dir)

	_, err := Open(dir, Options{Logger: testLogger(t)})
	host, _ := os.Hostname()
	want := fmt.Sprintf("cache %s is locked by pid %d on host %s; wait for it or stop it",
		dir, os.Getpid(), host)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open: %v; want ErrLocked containing %q", err, want)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// An idle cache names no host, and the lock is free again.
	data, err := os.ReadFile(first.path(lockFile))
	if err != nil || len(data) != 0 {
		t.Errorf("lock file after Close holds %q (%v), want nothing", data, err)
	}
	openCache(t, dir)
}

func TestUseAfterClose(t *testing.T) {
	c := openCache(t, t.TempDir())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	_, err := c.Images()
	if !errors.Is(err, errClosed) {
		t.Errorf("Images after Close: %v; want errClosed", err)
	}
}
