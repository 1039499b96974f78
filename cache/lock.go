package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLockInfo caps what is read from a lock file written by another process.
const maxLockInfo = 512

// acquireLock takes the exclusive writer lock of the cache at dir and records this process's
// PID and host in the lock file, so a second writer can say who is in the way. The lock is an
// flock: the kernel drops it when the holder dies, even by kill -9.
func acquireLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}

	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder := readHolder(f)
		f.Close()

		return nil, fmt.Errorf("cache %s is locked by %s; wait for it or stop it: %w",
			dir, holder, ErrLocked)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}

	err = writeHolder(f)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("write lock file %s: %w", path, err), releaseLock(f))
	}

	return f, nil
}

// Writer reports the process that holds the cache's writer lock, e.g. "pid 123 on host h",
// when it is not this Cache. A reader uses it to say that what it sees is still changing:
// blobs a running fetch has committed but not yet recorded look unreferenced. It takes a
// shared flock for an instant, which needs no write access.
func (c *Cache) Writer() (string, bool) {
	if !c.readOnly {
		return "", false
	}

	f, err := os.Open(c.path(lockFile))
	if err != nil {
		return "", false
	}
	defer f.Close()

	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		return readHolder(f), errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return "", false
}

// writeHolder replaces the lock file's content with this process's PID and host.
func writeHolder(f *os.File) error {
	host, err := os.Hostname()
	if err != nil {
		host = "an unknown host"
	}

	err = f.Truncate(0)
	if err != nil {
		return err
	}

	_, err = fmt.Fprintf(f, "pid=%d\nhost=%s\n", os.Getpid(), host)
	if err != nil {
		return err
	}

	return f.Sync()
}

// readHolder describes the lock holder recorded in f, e.g. "pid 123 on host h".
func readHolder(f *os.File) string {
	data, _ := io.ReadAll(io.LimitReader(f, maxLockInfo))
	fields := map[string]string{}
	for line := range strings.Lines(string(data)) {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok {
			fields[key] = value
		}
	}
	if fields["pid"] == "" {
		return "another process (it has not recorded its PID yet)"
	}

	return fmt.Sprintf("pid %s on host %s", fields["pid"], fields["host"])
}

// releaseLock empties the lock file, so an idle cache names no host, then unlocks and closes
// it. A holder killed before this leaves its PID and host behind; the next writer replaces it.
func releaseLock(f *os.File) error {
	errTruncate := f.Truncate(0)
	errUnlock := unix.Flock(int(f.Fd()), unix.LOCK_UN)
	errClose := f.Close()

	err := errors.Join(errTruncate, errUnlock, errClose)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", f.Name(), err)
	}

	return nil
}
