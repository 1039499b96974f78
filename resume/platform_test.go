package resume

import (
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/testimage"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in   string
		want ocispec.Platform
	}{
		{"linux/amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{"linux/arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{"linux/arm64/v8", ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{"linux/arm", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{"linux/arm/v6", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{"linux/x86_64", ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{"windows(10.0.20348)/amd64",
			ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if err != nil {
				t.Fatalf("ParsePlatform(%q): %v", tt.in, err)
			}
			if got.OS != tt.want.OS || got.Architecture != tt.want.Architecture ||
				got.Variant != tt.want.Variant || got.OSVersion != tt.want.OSVersion {
				t.Errorf("ParsePlatform(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePlatformRejects(t *testing.T) {
	for _, in := range []string{"", "linux/", "li nux/amd64", "linux/amd64/v8/extra",
		"linux", "arm64", "amd64", "windows(10.0.20348)"} {
		_, err := ParsePlatform(in)
		if err == nil {
			t.Errorf("ParsePlatform(%q) succeeded, want an error", in)
			continue
		}
		if !strings.Contains(err.Error(), "want os[(os.version)]/arch[/variant]") {
			t.Errorf("ParsePlatform(%q) error = %q, want it to say the form", in, err)
		}
	}
}

// containerd completes "linux" with the host's arch and "arm64" with the host's os; dls
// refuses both, so the platform fetched never depends on the machine fetching it.
func TestParsePlatformRejectsOnePart(t *testing.T) {
	for _, in := range []string{"linux", "arm64", "amd64", "windows"} {
		t.Run(in, func(t *testing.T) {
			got, err := ParsePlatform(in)

			want := `parse platform "` + in + `" (want os[(os.version)]/arch[/variant], ` +
				`e.g. linux/arm64): give both os and arch; dls never fills one in from the host`
			if err == nil || err.Error() != want {
				t.Fatalf("ParsePlatform(%q) = %+v, %v; want the error %q", in, got, err, want)
			}
		})
	}
}

// A Windows index lists one manifest per Windows build; containers must match the host's
// build, so the requested os.version picks the manifest, not the first windows/amd64.
func TestWindowsOSVersionPicksTheBuild(t *testing.T) {
	fx := newFixture(t)
	ltsc2019 := ocispec.Platform{OS: "windows", Architecture: "amd64",
		OSVersion: "10.0.17763.5820"}
	ltsc2022 := ocispec.Platform{OS: "windows", Architecture: "amd64",
		OSVersion: "10.0.20348.2227"}
	idx := testimage.MultiArch(t, testimage.NewRand(t, 11), testimage.MultiArchOptions{
		Platforms: []ocispec.Platform{ltsc2019, ltsc2022}, LayerSizes: []int{100},
	})
	idx.Push(t, fx.reg, "team/win", "v1")
	want, err := ParsePlatform("windows(10.0.20348)/amd64")
	if err != nil {
		t.Fatal(err)
	}

	plan, _ := fx.fetch(t, Options{Platforms: []ocispec.Platform{want}},
		fx.ref(t, "team/win:v1"))

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	img, err := fx.store.Image(fx.reg.Host + "/team/win:v1")
	if err != nil {
		t.Fatalf("image record: %v", err)
	}
	wantManifest := idx.Images[1].Manifest.Digest()
	if len(img.Manifests) != 1 || img.Manifests[0].Digest != wantManifest {
		t.Errorf("selected manifests = %v, want only the 10.0.20348 one, %s", img.Manifests,
			wantManifest)
	}
	for _, b := range idx.Images[0].Layers {
		if _, ok := fx.store.HasBlob(b.Digest()); ok {
			t.Errorf("layer %s of the 10.0.17763 build was fetched", b.Digest())
		}
	}

	other, err := ParsePlatform("windows(10.0.26100)/amd64")
	if err != nil {
		t.Fatal(err)
	}
	plan, _ = fx.fetch(t, Options{Platforms: []ocispec.Platform{other}},
		fx.ref(t, "team/win:v1"))
	wantErr := "has no windows(10.0.26100)/amd64 manifest; it has: " +
		"windows(10.0.17763.5820)/amd64, windows(10.0.20348.2227)/amd64"
	if len(plan.Failed) != 1 || !strings.Contains(plan.Failed[0].Error(), wantErr) {
		t.Errorf("failed = %v, want one error containing %q", plan.Failed, wantErr)
	}
}
