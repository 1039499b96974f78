package assemble

import (
	"testing"
)

// TestWriteRefusesNamesOfOtherContent caches busybox:1.37 and busybox:1.37 pinned to
// another tag's digest: both would be named busybox:1.37, for different images, so nothing
// is written and the error names both.
func TestWriteRefusesNamesOfOtherContent(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 30)
	current := s.buildManifest(t, linuxAMD64, randomBytes(rng, 900))
	other := s.buildManifest(t, linuxAMD64, randomBytes(rng, 800))
	tagged := s.singleImage("docker.io/library/busybox:1.37", current)
	pinned := s.singleImage("docker.io/library/busybox:1.37@"+other.desc.Digest.String(), other)
	s.singleImage("docker.io/library/unrelated:1", s.buildManifest(t, linuxAMD64, []byte("u")))
	want := "select images: docker.io/library/busybox:1.37 (" + current.desc.Digest.String() +
		") and " + pinned.Name + " (" + other.desc.Digest.String() + ") would both be " +
		"named docker.io/library/busybox:1.37 in the archive, for different content, and " +
		"loaders keep only one; assemble only one of them: pass an image list or --image " +
		"naming just that one"
	cases := []struct {
		name   string
		images []string
	}{
		{"every cached image", nil},
		{"both listed", []string{pinned.Name, tagged.Name}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err, fileErr, written := writeBoth(t, s, quietOptions(tc.images...))
			for _, e := range []error{err, fileErr} {
				if e.Error() != want {
					t.Errorf("error %q\nwant %q", e, want)
				}
			}

			if len(written) != 0 {
				t.Errorf("wrote %d bytes before failing", len(written))
			}
		})
	}

	for _, name := range []string{tagged.Name, pinned.Name} {
		data, res := writeArchive(t, s, quietOptions(name))
		if res.Images != 1 || len(data) == 0 {
			t.Errorf("%s alone: %+v, want it written", name, res)
		}
	}
}
