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
	"sync"
	"syscall"
	"time"
)

// childTimeout bounds every command the bench runs, so a hang ends the bench.
const childTimeout = 30 * time.Minute

// childResult is one finished command.
type childResult struct {
	elapsed time.Duration
	// maxRSS is the child's peak resident set in bytes as GNU time reports it; 0 when
	// unknown (no GNU time, or it wrote no figure).
	maxRSS int64
	stdout []byte
	err    error
}

// ok reports whether the command exited 0.
func (r childResult) ok() bool { return r.err == nil }

// timeCmd is GNU time, which reports its child's peak RSS. The bench's own rusage of a
// child cannot: Go starts children with vfork, and Linux then counts the parent's peak
// RSS (the bench holds a registry and a corpus) as the child's. So without GNU time the
// bench reports no RSS at all rather than that figure.
const timeCmd = "/usr/bin/time"

// noRSS says why peak RSS figures are missing, for the report and the targets.
const noRSS = "not measured: needs GNU time at " + timeCmd

// haveGNUTime reports, once per run, whether timeCmd is GNU time (BusyBox's time has
// neither --version nor -o).
var haveGNUTime = sync.OnceValue(func() bool {
	out, err := exec.Command(timeCmd, "--version").CombinedOutput()
	return err == nil && strings.Contains(string(out), "GNU")
})

// runChild runs name with args, appending its stderr (and a header naming the command) to
// logPath, and measures wall time and, through GNU time when it is installed, peak RSS.
// It flushes dirty pages first, so that the writeback of what ran before does not slow
// this command down.
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
	if haveGNUTime() {
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
	res.maxRSS = peakRSS(rssFile)
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

// peakRSS reads the peak RSS in bytes that GNU time wrote to rssFile (after any "Command
// exited with non-zero status" line); 0 when there is no such figure.
func peakRSS(rssFile string) int64 {
	if rssFile == "" {
		return 0
	}
	data, err := os.ReadFile(rssFile)
	if err != nil {
		return 0
	}

	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	kb, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}
