package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childTimeout bounds every command the bench runs, so a hang ends the bench.
const childTimeout = 30 * time.Minute

// childResult is one finished command.
type childResult struct {
	elapsed time.Duration
	// maxRSS is the child's peak resident set in bytes (getrusage ru_maxrss).
	maxRSS int64
	stdout []byte
	err    error
}

// ok reports whether the command exited 0.
func (r childResult) ok() bool { return r.err == nil }

// timeCmd is GNU time, which reports its child's peak RSS. The bench's own rusage of a
// child cannot: Go starts children with vfork, and Linux then counts the parent's peak
// RSS (the bench holds a registry and a corpus) as the child's.
const timeCmd = "/usr/bin/time"

// runChild runs name with args, appending its stderr (and a header naming the command) to
// logPath, and measures wall time and peak RSS (through GNU time when it is installed,
// else from rusage, which then reads at least the bench's own RSS). It flushes dirty pages
// first, so that the writeback of what ran before does not slow this command down.
func runChild(ctx context.Context, logPath, name string, args ...string) childResult {
	syscall.Sync()
	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	defer cancel()

	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return childResult{err: err}
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n$ %s %s\n", name, strings.Join(args, " "))

	what := name + " " + firstArg(args)
	rssFile := ""
	if _, err := os.Stat(timeCmd); err == nil {
		rssFile = logPath + ".rss"
		args = append([]string{"-f", "%M", "-o", rssFile, name}, args...)
		name = timeCmd
		defer os.Remove(rssFile)
	}

	var out bytes.Buffer
	tail := &tailBuffer{}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(logf, tail)
	start := time.Now()
	err = cmd.Run()
	res := childResult{elapsed: time.Since(start), stdout: out.Bytes()}
	if err != nil {
		res.err = fmt.Errorf("%s: %w (see %s): %s", what, err, logPath, tail.lastLine())
	}
	res.maxRSS = peakRSS(cmd.ProcessState, rssFile)
	return res
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// tailBuffer keeps the last tailSize bytes written to it.
type tailBuffer struct{ b []byte }

const tailSize = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailSize {
		t.b = t.b[len(t.b)-tailSize:]
	}
	return len(p), nil
}

// lastLine is the last non-empty line held.
func (t *tailBuffer) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return lines[len(lines)-1]
}

// peakRSS reads the peak RSS in bytes that GNU time wrote to rssFile, or else the rusage
// of the finished process; 0 when neither is known.
func peakRSS(ps *os.ProcessState, rssFile string) int64 {
	if rssFile != "" {
		data, err := os.ReadFile(rssFile)
		if err != nil {
			return 0
		}
		lines := strings.Fields(string(data))
		if len(lines) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // Linux reports kilobytes
	}
	return 0
}
