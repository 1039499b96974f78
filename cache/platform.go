package cache

import (
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PlatformMatches reports whether a manifest built for have satisfies a request for want.
// OS, architecture and variant are compared as containerd normalises them (linux/arm64 is
// linux/arm64/v8). When want names an OS version, as Windows images need (a container must
// match its host's build), have must carry that version or a revision of it: "10.0.20348"
// matches "10.0.20348" and "10.0.20348.2227", never "10.0.17763.1". containerd's own matcher
// compares OS versions only when built for Windows, which dls never is.
func PlatformMatches(want, have ocispec.Platform) bool {
	have = platforms.Normalize(have)
	if !platforms.NewMatcher(platforms.Normalize(want)).Match(have) {
		return false
	}

	if want.OSVersion == "" {
		return true
	}
	return have.OSVersion == want.OSVersion ||
		strings.HasPrefix(have.OSVersion, want.OSVersion+".")
}

// FormatPlatform writes p as --platform reads it: os[(os.version)]/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	return platforms.FormatAll(p)
}
