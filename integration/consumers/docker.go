package consumers

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// Docker drives the host's Docker daemon. The daemon is shared with the rest of the machine,
// so Docker removes, at cleanup, every image its Load reported and nothing else.
type Docker struct {
	mu     sync.Mutex
	loaded []string
}

// NewDocker checks that the docker CLI exists and its daemon answers, and registers the
// cleanup that removes loaded images.
func NewDocker(t testing.TB) *Docker {
	t.Helper()

	RequireTools(t, "docker")
	version := strings.TrimSpace(mustOutput(t, "docker", "version", "--format",
		"{{.Server.Version}}"))
	t.Logf("docker daemon %s", version)

	d := &Docker{}
	t.Cleanup(func() { d.removeLoaded(t) })
	return d
}

// Load runs docker load -i file and returns the names of its "Loaded image: NAME" lines,
// in order. It fails t when docker load fails.
func (d *Docker) Load(t testing.TB, file string) []string {
	t.Helper()

	out := mustOutput(t, "docker", "load", "-i", file)
	names := parseLoaded(out)

	d.mu.Lock()
	d.loaded = append(d.loaded, names...)
	d.mu.Unlock()
	return names
}

// parseLoaded returns the names of docker load's "Loaded image: NAME" lines; "Loaded image
// ID:" lines (untagged images) are not names and are left out.
func parseLoaded(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "Loaded image: "); ok {
			names = append(names, name)
		}
	}
	return names
}

// Run runs image in a new container with no network (docker run --rm) and returns its
// standard output.
func (d *Docker) Run(t testing.TB, image string) string {
	t.Helper()

	return mustOutput(t, "docker", "run", "--rm", "--network", "none", image)
}

// removeLoaded untags and deletes every image Load reported. It runs at cleanup, after the
// test's context is cancelled, so it uses its own.
func (d *Docker) removeLoaded(t testing.TB) {
	t.Helper()

	d.mu.Lock()
	names := d.loaded
	d.mu.Unlock()
	if len(names) == 0 {
		return
	}
	args := append([]string{"rmi", "--force"}, names...)
	if _, err := Output(context.Background(), "docker", args...); err != nil {
		t.Errorf("remove loaded images: %v", err)
	}
}
