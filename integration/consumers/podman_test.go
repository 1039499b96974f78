package consumers

import (
	"maps"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParsePodmanLoaded(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []string
	}{
		{name: "podman 4 one line per image",
			out: "Getting image source signatures\nLoaded image: docker.io/a/b:1\n" +
				"Loaded image: localhost/c:2\n",
			want: []string{"docker.io/a/b:1", "localhost/c:2"}},
		{name: "podman 3 comma list", out: "Loaded image(s): docker.io/a/b:1,localhost/c:2\n",
			want: []string{"docker.io/a/b:1", "localhost/c:2"}},
		{name: "nothing loaded", out: "Writing manifest to image destination\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parsePodmanLoaded(tc.out); !slices.Equal(got, tc.want) {
				t.Fatalf("parsePodmanLoaded = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParsePodmanImages(t *testing.T) {
	const (
		id  = "1111111111111111111111111111111111111111111111111111111111111111"
		id2 = "3333333333333333333333333333333333333333333333333333333333333333"
		d   = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	out := `[{"Id":"` + id + `","Names":["docker.io/a/b:1","docker.io/a/b:2"],` +
		`"Digest":"` + d + `"},{"Id":"` + id2 + `","Names":null,"Digest":"` + d + `"}]`
	got, err := parsePodmanImages(out)
	if err != nil {
		t.Fatal(err)
	}

	img := PodmanImage{ID: digest.Digest("sha256:" + id), Digest: d}
	want := map[string]PodmanImage{"docker.io/a/b:1": img, "docker.io/a/b:2": img,
		"sha256:" + id2: {ID: digest.Digest("sha256:" + id2), Digest: d}}
	if !maps.Equal(got, want) {
		t.Fatalf("parsePodmanImages = %v\nwant %v", got, want)
	}

	if _, err := parsePodmanImages(`[{"Id":"xyz","Digest":"` + d + `"}]`); err == nil {
		t.Fatal("parsePodmanImages accepted the ID \"xyz\"")
	}
}
