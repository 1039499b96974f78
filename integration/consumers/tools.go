// Package consumers drives the real programs that read dls archives: a private containerd
// daemon through ctr, and the host's Docker daemon. Tests use it to prove an archive imports
// and runs, not only that its bytes look right.
//
// A missing tool fails the test with what to install; it never skips, because a skipped
// consumer test proves nothing. CI installs every tool (.ci/run).
package consumers

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// commandTimeout bounds every consumer command, so that a hung daemon fails one test with
// its output instead of the whole suite at go test's -timeout.
const commandTimeout = 2 * time.Minute

// installHints says which Debian package provides each tool.
var installHints = map[string]string{
	"containerd": "apt-get install containerd",
	"ctr":        "apt-get install containerd",
	"runc":       "apt-get install runc",
	"docker":     "apt-get install docker.io, and start dockerd",
	"podman":     "apt-get install podman",
	"skopeo":     "apt-get install skopeo",
}

// RequireTools fails t, naming every missing tool and its package, unless all names are
// found on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()

	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", name, installHints[name]))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("consumer tools missing from PATH: %s; install them as .ci/run does",
			strings.Join(missing, ", "))
	}
}

// Output runs name with args under ctx (capped at commandTimeout) and returns its standard
// output. On failure the error holds the command line, the exit status and standard error.
func Output(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		return stdout.String(), fmt.Errorf("run %s: %w\nstderr: %s\nstdout: %s",
			line, err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.String(), nil
}

// mustOutput is Output that fails t on error.
func mustOutput(t testing.TB, name string, args ...string) string {
	t.Helper()

	out, err := Output(t.Context(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
