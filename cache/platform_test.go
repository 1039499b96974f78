package cache

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPlatformMatches(t *testing.T) {
	linux := func(arch, variant string) ocispec.Platform {
		return ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant}
	}
	windows := func(version string) ocispec.Platform {
		return ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: version}
	}
	tests := []struct {
		name       string
		want, have ocispec.Platform
		match      bool
	}{
		{"same platform", linux("amd64", ""), linux("amd64", ""), true},
		{"other architecture", linux("amd64", ""), linux("arm64", ""), false},
		{"arm64 is arm64/v8", linux("arm64", ""), linux("arm64", "v8"), true},
		{"arm64/v8 is arm64", linux("arm64", "v8"), linux("arm64", ""), true},
		{"arm is arm/v7", linux("arm", ""), linux("arm", "v7"), true},
		{"arm/v7 is not arm/v6", linux("arm", "v7"), linux("arm", "v6"), false},
		{"aarch64 is arm64", linux("aarch64", ""), linux("arm64", ""), true},
		{"no version asked: any build", windows(""), windows("10.0.17763.1"), true},
		{"same build", windows("10.0.20348"), windows("10.0.20348"), true},
		{"a revision of the build", windows("10.0.20348"), windows("10.0.20348.2227"), true},
		{"another build", windows("10.0.20348"), windows("10.0.17763.5820"), false},
		{"a build sharing a prefix", windows("10.0.2034"), windows("10.0.20348.1"), false},
		{"a version the image lacks", windows("10.0.20348"), windows(""), false},
		{"linux for windows", windows(""), linux("amd64", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlatformMatches(tt.want, tt.have); got != tt.match {
				t.Errorf("PlatformMatches(%s, %s) = %v, want %v", FormatPlatform(tt.want),
					FormatPlatform(tt.have), got, tt.match)
			}
		})
	}
}

func TestFormatPlatformKeepsOSVersion(t *testing.T) {
	p := ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}
	if got, want := FormatPlatform(p), "windows(10.0.20348.2227)/amd64"; got != want {
		t.Errorf("FormatPlatform = %q, want %q", got, want)
	}
}
