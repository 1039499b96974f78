package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Podman runs podman with storage private to one test: the vfs driver (no mounts, so it
// works in any sandbox and its directory is removed like any other) under a root, run
// root, libpod tmpdir and TMPDIR of its own, events off. Nothing touches the host's
// podman storage, and two Podmans never see each other's images.
type Podman struct {
	// Dir holds everything of this podman, directly under /tmp; the test's cleanup
	// removes it.
	Dir string
	// Version is podman's own version ("4.3.1"), for consumer-specific expectations.
	Version string
}

// NewPodman checks that podman exists, reads its version and prepares a private storage.
// It needs root, as rootless podman would need a user namespace set up for the test user.
func NewPodman(t testing.TB) *Podman {
	t.Helper()

	RequireTools(t, "podman")
	if os.Geteuid() != 0 {
		t.Fatal("start podman: needs root; run the integration tests as root, as CI does")
	}

	// Not t.TempDir: podman refuses a run root path longer than 50 bytes.
	dir, err := os.MkdirTemp("/tmp", "dls-podman-")
	if err != nil {
		t.Fatalf("prepare podman storage: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove podman storage: %v", err)
		}
	})

	p := &Podman{Dir: dir}
	for _, sub := range []string{"root", "runroot", "libpod", "tmp"} {
		if err := os.Mkdir(filepath.Join(p.Dir, sub), 0o700); err != nil {
			t.Fatalf("prepare podman storage: %v", err)
		}
	}

	out := mustOutput(t, "podman", "version", "--format", "{{.Client.Version}}")
	p.Version = strings.TrimSpace(out)
	return p
}

// Podman runs podman with args after the flags that make its storage private, and returns
// its standard output; the error carries standard error.
func (p *Podman) Podman(ctx context.Context, args ...string) (string, error) {
	full := []string{
		// Big-file temporaries (an oci-archive is untarred whole) stay in Dir too.
		"TMPDIR=" + filepath.Join(p.Dir, "tmp"),
		"podman",
		"--root", filepath.Join(p.Dir, "root"),
		"--runroot", filepath.Join(p.Dir, "runroot"),
		"--tmpdir", filepath.Join(p.Dir, "libpod"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "none",
	}
	return Output(ctx, "env", append(full, args...)...)
}

// Load runs podman load -i file and returns the names it reports loading, in order: the
// names of tagged images, and "sha256:<id>" for an untagged one. The error, when podman
// fails, holds its standard error, so a test can match the documented failure.
func (p *Podman) Load(ctx context.Context, file string) ([]string, error) {
	out, err := p.Podman(ctx, "load", "-i", file)
	if err != nil {
		return nil, err
	}

	return parsePodmanLoaded(out), nil
}

// parsePodmanLoaded reads podman load's report: "Loaded image: NAME" per image (podman ≥
// 4.0) or "Loaded image(s): A,B" (podman 3).
func parsePodmanLoaded(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "Loaded image: "); ok {
			names = append(names, name)
			continue
		}

		if list, ok := strings.CutPrefix(line, "Loaded image(s): "); ok {
			names = append(names, strings.Split(list, ",")...)
		}
	}
	return names
}

// PodmanImage is one image of podman's storage.
type PodmanImage struct {
	// ID is the image ID, which podman takes from the config digest.
	ID digest.Digest
	// Digest is the digest of the manifest podman stored the image from: the archive's
	// top-level document when it loaded through index.json (oci-archive), a manifest it
	// generated when it loaded through manifest.json (docker-archive).
	Digest digest.Digest
}

// Images returns podman's images by name; an untagged image is listed under its ID
// ("sha256:<hex>").
func (p *Podman) Images(t testing.TB) map[string]PodmanImage {
	t.Helper()

	out, err := p.Podman(t.Context(), "images", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}

	images, err := parsePodmanImages(out)
	if err != nil {
		t.Fatalf("podman images: %v\n%s", err, out)
	}
	return images
}

// podmanImageJSON is the part of podman images --format json the tests read.
type podmanImageJSON struct {
	ID     string   `json:"Id"`
	Names  []string `json:"Names"`
	Digest string   `json:"Digest"`
}

func parsePodmanImages(out string) (map[string]PodmanImage, error) {
	var list []podmanImageJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decode image list: %w", err)
	}

	images := map[string]PodmanImage{}
	for _, img := range list {
		id := digest.NewDigestFromEncoded(digest.SHA256, img.ID)
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("image %q: bad ID: %w", img.ID, err)
		}

		dgst, err := digest.Parse(img.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: bad digest %q: %w", img.ID, img.Digest, err)
		}

		names := img.Names
		if len(names) == 0 {
			names = []string{id.String()}
		}
		for _, name := range names {
			images[name] = PodmanImage{ID: id, Digest: dgst}
		}
	}
	return images, nil
}
