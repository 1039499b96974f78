package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dlsTimeout bounds one dls command. Every run here moves a few megabytes over loopback;
// reaching it means dls hangs or retries far too long, which is a failure in itself.
const dlsTimeout = 90 * time.Second

// dlsBin is the dls binary TestMain builds for this run.
var dlsBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds cmd/dls into a temporary directory, runs the tests and removes it.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dls-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "build dls: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	dlsBin = filepath.Join(dir, "dls")
	if err := buildDLS(dlsBin); err != nil {
		fmt.Fprintf(os.Stderr, "build dls: %v\n", err)
		return 1
	}
	return m.Run()
}

// buildDLS compiles cmd/dls to out, with the race detector when the tests have it.
func buildDLS(out string) error {
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/dlsproject/dls/cmd/dls")

	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return nil
}

// dlsResult is what one dls command did.
type dlsResult struct {
	Stdout, Stderr string
	// Code is the exit status; -1 when dls did not exit on its own (killed at dlsTimeout).
	Code int
	Took time.Duration
}

// runDLS runs dls with args in dir (the test's temporary directory when ""), with HOME
// pointing at an empty directory so no user configuration or credentials leak in. It logs
// the command, its exit status and its standard error.
func runDLS(t testing.TB, dir string, args ...string) dlsResult {
	t.Helper()

	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), dlsTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, dlsBin, args...)
	cmd.Dir = dir
	// A race-enabled binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir(),
		"GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	start := time.Now()
	err := cmd.Run()
	res := dlsResult{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.Code = -1
		t.Errorf("dls %s: still running after %s", strings.Join(args, " "), dlsTimeout)
	case errors.As(err, &exit):
		res.Code = exit.ExitCode()
	default:
		t.Fatalf("run dls %s: %v", strings.Join(args, " "), err)
	}

	t.Logf("dls %s: exit %d in %s\nstderr:\n%s", strings.Join(args, " "), res.Code,
		res.Took.Round(time.Millisecond), res.Stderr)
	return res
}
