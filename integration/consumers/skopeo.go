package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Skopeo runs skopeo inspect on archives, the way containers/image (podman's library)
// reads them: docker-archive: through manifest.json, oci-archive: through index.json.
type Skopeo struct {
	// Version is skopeo's own version ("1.9.3"), for consumer-specific expectations.
	Version string

	tmp string
}

// NewSkopeo checks that skopeo exists and reads its version. Its big-file temporaries
// (a compressed archive is decompressed to one) go to a directory of the test.
func NewSkopeo(t testing.TB) *Skopeo {
	t.Helper()

	RequireTools(t, "skopeo")
	out := mustOutput(t, "skopeo", "--version")
	// "skopeo version 1.9.3" (some builds add " commit: …").
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "skopeo" || f[1] != "version" {
		t.Fatalf("skopeo --version printed %q; want \"skopeo version X\"", out)
	}
	return &Skopeo{Version: f[2], tmp: t.TempDir()}
}

// SkopeoImage is what skopeo inspect reports of one image, plus the manifest it read.
type SkopeoImage struct {
	// Digest is the digest of the top-level manifest skopeo read: for oci-archive the
	// index.json entry's document, for docker-archive a schema2 manifest generated from
	// manifest.json (so it hashes Raw).
	Digest digest.Digest
	// Layers are the layer digests of the chosen platform's manifest: the blobs' digests
	// for oci-archive, the DiffIDs for docker-archive (which serves layers uncompressed).
	Layers       []digest.Digest
	Os           string
	Architecture string
	// Raw is the top-level manifest (skopeo inspect --raw).
	Raw []byte
}

// Inspect runs skopeo inspect and skopeo inspect --raw on ref, a transport reference such
// as "docker-archive:/x/images.tar:busybox:1" or "oci-archive:/x/images.tar". The error,
// when skopeo fails, holds its standard error.
func (s *Skopeo) Inspect(ctx context.Context, ref string) (SkopeoImage, error) {
	out, err := s.skopeo(ctx, "inspect", ref)
	if err != nil {
		return SkopeoImage{}, err
	}

	var img SkopeoImage
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		return SkopeoImage{}, fmt.Errorf("decode skopeo inspect %s: %w\n%s", ref, err, out)
	}

	raw, err := s.skopeo(ctx, "inspect", "--raw", ref)
	if err != nil {
		return SkopeoImage{}, err
	}

	img.Raw = []byte(raw)
	return img, nil
}

func (s *Skopeo) skopeo(ctx context.Context, args ...string) (string, error) {
	return Output(ctx, "env", append([]string{"TMPDIR=" + s.tmp, "skopeo"}, args...)...)
}
