package resume

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// platformForm is the syntax ParsePlatform accepts, quoted in its errors.
const platformForm = "os[(os.version)]/arch[/variant], e.g. linux/arm64"

// ParsePlatform parses "os[(os.version)]/arch[/variant]" and normalises it the way
// containerd does, so "linux/arm64" and "linux/arm64/v8" name the same platform, and
// "windows(10.0.20348)/amd64" asks for that Windows build. Unlike containerd it refuses a
// specifier of one part ("linux", "arm64"): containerd fills in the other part from the
// host, and an archive for air-gapped machines must not depend on where it was built.
func ParsePlatform(s string) (ocispec.Platform, error) {
	// containerd splits on every "/", also inside the os.version, so a specifier without
	// one is exactly the one-part form it would complete from the host.
	if !strings.Contains(s, "/") {
		return ocispec.Platform{}, fmt.Errorf("parse platform %q (want %s): give both os "+
			"and arch; dls never fills one in from the host", s, platformForm)
	}

	p, err := platforms.Parse(s)
	if err != nil {
		return p, fmt.Errorf("parse platform %q (want %s): %w", s, platformForm, err)
	}

	return platforms.Normalize(p), nil
}

// matchPlatform returns the first index entry for platform p. Attestation entries never
// match: they describe an image, they are not one.
func matchPlatform(p ocispec.Platform, children []ocispec.Descriptor) (ocispec.Descriptor,
	bool) {
	for _, child := range children {
		if child.Platform == nil || isAttestation(child) {
			continue
		}
		if cache.PlatformMatches(p, *child.Platform) {
			return child, true
		}
	}
	return ocispec.Descriptor{}, false
}

// listPlatforms names the runnable platforms of an index, for error messages.
func listPlatforms(children []ocispec.Descriptor) []string {
	var names []string
	for _, child := range children {
		if child.Platform == nil || isAttestation(child) {
			continue
		}
		names = append(names, formatPlatform(*child.Platform))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func formatPlatform(p ocispec.Platform) string {
	return cache.FormatPlatform(p)
}
