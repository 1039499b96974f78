package assemble

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParseImageName(t *testing.T) {
	target := digest.FromString("target")
	cases := []struct {
		name, in string
		want     imageName
	}{
		{"docker hub official image", "docker.io/library/busybox:1.36", imageName{
			full: "docker.io/library/busybox:1.36", refName: "1.36",
			repoTag: "docker.io/library/busybox:1.36", repo: "busybox", tag: "1.36"}},
		{"docker hub user image keeps its namespace", "docker.io/rancher/x:1", imageName{
			full: "docker.io/rancher/x:1", refName: "1", repoTag: "docker.io/rancher/x:1",
			repo: "rancher/x", tag: "1"}},
		{"other registry keeps its host", "ghcr.io/o/app:v1", imageName{
			full: "ghcr.io/o/app:v1", refName: "v1", repoTag: "ghcr.io/o/app:v1",
			repo: "ghcr.io/o/app", tag: "v1"}},
		{"registry with port", "localhost:5000/a/b:c", imageName{
			full: "localhost:5000/a/b:c", refName: "c", repoTag: "localhost:5000/a/b:c",
			repo: "localhost:5000/a/b", tag: "c"}},
		{"short name is normalised", "alpine:3.20", imageName{
			full: "docker.io/library/alpine:3.20", refName: "3.20",
			repoTag: "docker.io/library/alpine:3.20", repo: "alpine", tag: "3.20"}},
		{"digest only is named by its whole reference", "quay.io/a/b@" + target.String(),
			imageName{full: "quay.io/a/b@" + target.String(),
				refName: "quay.io/a/b@" + target.String()}},
		{"tag and digest is named by its tag", "docker.io/library/a:1@" + target.String(),
			imageName{full: "docker.io/library/a:1", refName: "1",
				repoTag: "docker.io/library/a:1", repo: "a", tag: "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseImageName(tc.in, target)
			if err != nil {
				t.Fatal(err)
			}

			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseImageNameErrors(t *testing.T) {
	target := digest.FromString("target")
	other := digest.FromString("other")
	cases := []struct {
		name, in, want string
	}{
		{"no tag", "docker.io/library/a",
			"image docker.io/library/a: the name has neither tag nor digest; loaders need one"},
		{"upper case", "docker.io/library/A:1",
			`parse image name "docker.io/library/A:1": invalid reference format: ` +
				"repository name (library/A) must be lowercase"},
		{"digest of other content", "docker.io/library/a@" + other.String(),
			"image docker.io/library/a@" + other.String() + ": its name pins " +
				other.String() + " but its target is " + target.String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseImageName(tc.in, target)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{5 << 20, "5.0 MiB"},
		{3<<30 + 512<<20, "3.5 GiB"},
	}
	for _, tc := range cases {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
