package consumers

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Ctr runs ctr against this daemon with args and returns its standard output; the error
// carries standard error. Use it for commands expected to fail.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	return Output(ctx, "ctr", append([]string{"-a", c.Socket}, args...)...)
}

// MustCtr is Ctr that fails t on error.
func (c *Containerd) MustCtr(t testing.TB, args ...string) string {
	t.Helper()

	out, err := c.Ctr(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ImportArgs are the ctr arguments that import file into namespace, unpacking with the
// daemon's snapshotter; allPlatforms walks every platform of an index, with no skip-missing,
// which is the strict check that every listed manifest is in the archive.
func (c *Containerd) ImportArgs(namespace, file string, allPlatforms bool) []string {
	args := []string{"-n", namespace, "images", "import", "--snapshotter", c.Snapshotter}
	if allPlatforms {
		args = append(args, "--all-platforms")
	}
	return append(args, file)
}

// Import imports file into namespace (ctr images import) and fails t when ctr does.
func (c *Containerd) Import(t testing.TB, namespace, file string, allPlatforms bool) string {
	t.Helper()

	return c.MustCtr(t, c.ImportArgs(namespace, file, allPlatforms)...)
}

// Images returns the images of namespace, name to target digest, from ctr images ls.
func (c *Containerd) Images(t testing.TB, namespace string) map[string]digest.Digest {
	t.Helper()

	out := c.MustCtr(t, "-n", namespace, "images", "ls")
	images, err := parseImageList(out)
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	return images
}

// parseImageList reads ctr images ls output: a header, then REF TYPE DIGEST SIZE ... rows.
func parseImageList(out string) (map[string]digest.Digest, error) {
	images := map[string]digest.Digest{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("parse line %d %q: want REF TYPE DIGEST ...", i+1, line)
		}
		d, err := digest.Parse(f[2])
		if err != nil {
			return nil, fmt.Errorf("parse line %d %q: %w", i+1, line, err)
		}

		images[f[0]] = d
	}
	return images, nil
}

// runAttempts is how often Run starts a container that printed nothing: containerd drops
// the output of a process that exits at once every few hundred runs (containerd#5741), and
// the test images print one line and exit. An image that cannot run fails every attempt.
const runAttempts = 3

// Run runs image from namespace in a new container (ctr run --rm) and returns what it
// printed on standard output. The container's runc state lives under Dir. Safe for
// concurrent use: every container gets its own ID.
func (c *Containerd) Run(t testing.TB, namespace, image string) string {
	t.Helper()

	var out string
	for attempt := 1; attempt <= runAttempts; attempt++ {
		id := fmt.Sprintf("dls-test-%d", c.runs.Add(1))
		out = c.MustCtr(t, "-n", namespace, "run", "--rm", "--snapshotter", c.Snapshotter,
			"--runc-root", filepath.Join(c.Dir, "runc"), image, id)
		if out != "" {
			break
		}
		t.Logf("ctr run %s printed nothing (attempt %d of %d; containerd#5741)", image,
			attempt, runAttempts)
	}
	return out
}
