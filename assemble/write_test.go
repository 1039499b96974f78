package assemble

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// quietOptions are Options that log nowhere.
func quietOptions(images ...string) Options {
	return Options{Images: images, Logger: slog.New(slog.DiscardHandler)}
}

// writeArchive runs Write and returns the archive bytes.
func writeArchive(tb testing.TB, src Source, opts Options) ([]byte, Result) {
	tb.Helper()
	var buf bytes.Buffer
	res, err := Write(context.Background(), src, &buf, opts)
	if err != nil {
		tb.Fatalf("Write: %v", err)
	}

	if res.Bytes != int64(buf.Len()) {
		tb.Errorf("Result.Bytes = %d, wrote %d", res.Bytes, buf.Len())
	}

	return buf.Bytes(), res
}

// archiveCase builds content in a source and says what the archive of it must hold.
type archiveCase struct {
	name string
	// build fills s and returns the names to request and the archive wanted.
	build func(t *testing.T, s *testSource) ([]string, wantArchive, Result)
}

var archiveCases = []archiveCase{
	{"single manifest image", buildSingle},
	{"multi-arch index keeps every child but one platform's layers", buildMultiArch},
	{"two tags of one image share a manifest.json item", buildTwoTags},
	{"two images sharing a layer store it once", buildSharedLayer},
	{"repeated layer is listed twice and stored once", buildRepeatedLayer},
	{"digest-only image has no RepoTags and no repositories", buildDigestOnly},
	{"digest-only and tagged names of one manifest", buildDigestAndTag},
	{"tag and tag@digest of one index are written once", buildPinnedTag},
}

func TestWriteArchiveContent(t *testing.T) {
	for i, tc := range archiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			names, want, wantRes := tc.build(t, s)
			data, res := writeArchive(t, s, quietOptions(names...))
			checkArchive(t, s, data, want)
			// The source vouches for no file, so every blob is hashed.
			wantRes.Bytes, wantRes.Hashed = res.Bytes, wantRes.Blobs
			if !reflect.DeepEqual(res, wantRes) {
				t.Errorf("Result = %+v, want %+v", res, wantRes)
			}

			again, _ := writeArchive(t, s, quietOptions(names...))
			if !bytes.Equal(data, again) {
				t.Errorf("case %d: a second run wrote different bytes", i)
			}

			// Files the source vouches for are copied unhashed, into the same bytes.
			s.unchanged = map[digest.Digest]bool{}
			for _, img := range s.images {
				for _, b := range img.Blobs {
					s.unchanged[b.Digest] = true
				}
			}
			plain, res := writeArchive(t, s, quietOptions(names...))
			if !bytes.Equal(data, plain) || res.Hashed != 0 {
				t.Errorf("case %d: unhashed copy: %d blobs hashed, same bytes %v; want 0, true",
					i, res.Hashed, bytes.Equal(data, plain))
			}
		})
	}
}

func buildSingle(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 1)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 3000), randomBytes(rng, 5000))
	img := s.singleImage("docker.io/library/busybox:1.36", m)
	return []string{img.Name}, wantArchive{
		index:        wantIndex(wantIndexEntry(img.Target, img.Name, "1.36")),
		manifest:     wantManifest(wantItem(m, "docker.io/library/busybox:1.36")),
		repositories: fmt.Sprintf(`{"busybox":{"1.36":%q}}`, top(m)),
		blobs:        m.blobs(),
	}, Result{Images: 1, Blobs: 4}
}

func buildMultiArch(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 2)
	amd := s.buildManifest(t, linuxAMD64, randomBytes(rng, 2000), randomBytes(rng, 4000))
	arm := s.buildManifest(t, linuxARM64, randomBytes(rng, 2500))
	att := s.buildManifest(t, unknown, randomBytes(rng, 300))
	att.desc.Annotations = map[string]string{
		"vnd.docker.reference.type":   "attestation-manifest",
		"vnd.docker.reference.digest": amd.desc.Digest.String(),
	}
	// Only the amd64 platform was fetched: the other configs and layers are absent.
	for _, d := range append([]ocispec.Descriptor{arm.config, att.config}, arm.layers...) {
		s.removeBlob(t, d.Digest)
	}
	s.removeBlob(t, att.layers[0].Digest)

	img := s.indexImage(t, "ghcr.io/acme/app:v1", amd, amd.desc, arm.desc, att.desc)
	blobs := append(amd.blobs(), img.Target, arm.desc, att.desc)
	return nil, wantArchive{
		index:        wantIndex(wantIndexEntry(img.Target, img.Name, "v1")),
		manifest:     wantManifest(wantItem(amd, "ghcr.io/acme/app:v1")),
		repositories: fmt.Sprintf(`{"ghcr.io/acme/app":{"v1":%q}}`, top(amd)),
		blobs:        blobs,
	}, Result{Images: 1, Blobs: 7}
}

func buildTwoTags(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 3)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 1000))
	latest := s.singleImage("docker.io/rancher/x:latest", m)
	one := s.singleImage("docker.io/rancher/x:1", m)
	return []string{latest.Name, one.Name}, wantArchive{
		index: wantIndex(
			wantIndexEntry(one.Target, one.Name, "1"),
			wantIndexEntry(latest.Target, latest.Name, "latest")),
		manifest: wantManifest(wantItem(m, "docker.io/rancher/x:1",
			"docker.io/rancher/x:latest")),
		repositories: fmt.Sprintf(`{"rancher/x":{"1":%q,"latest":%[1]q}}`, top(m)),
		blobs:        m.blobs(),
	}, Result{Images: 2, Blobs: 3}
}

func buildSharedLayer(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 4)
	shared := randomBytes(rng, 4000)
	a := s.buildManifest(t, linuxAMD64, shared, randomBytes(rng, 1000))
	b := s.buildManifest(t, linuxARM64, shared, randomBytes(rng, 1500))
	imgA := s.singleImage("docker.io/library/a:1", a)
	imgB := s.singleImage("quay.io/org/b:2", b)
	if a.layers[0].Digest != b.layers[0].Digest {
		t.Fatal("the shared layer was not shared")
	}

	return []string{imgB.Name, imgA.Name}, wantArchive{
		index: wantIndex(
			wantIndexEntry(imgA.Target, imgA.Name, "1"),
			wantIndexEntry(imgB.Target, imgB.Name, "2")),
		manifest:     wantManifest(wantItem(a, "docker.io/library/a:1"), wantItem(b, "quay.io/org/b:2")),
		repositories: fmt.Sprintf(`{"a":{"1":%q},"quay.io/org/b":{"2":%q}}`, top(a), top(b)),
		blobs:        append(a.blobs(), b.blobs()...),
	}, Result{Images: 2, Blobs: 7}
}

func buildRepeatedLayer(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 5)
	l1, l2 := randomBytes(rng, 700), randomBytes(rng, 900)
	m := s.buildManifest(t, linuxAMD64, l1, l2, l1)
	img := s.singleImage("registry.k8s.io/pause:3.10", m)
	return []string{img.Name}, wantArchive{
		index:        wantIndex(wantIndexEntry(img.Target, img.Name, "3.10")),
		manifest:     wantManifest(wantItem(m, "registry.k8s.io/pause:3.10")),
		repositories: fmt.Sprintf(`{"registry.k8s.io/pause":{"3.10":%q}}`, top(m)),
		blobs:        m.blobs(),
	}, Result{Images: 1, Blobs: 4}
}

func buildDigestOnly(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 6)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 1200))
	img := s.singleImage("docker.io/library/busybox@"+m.desc.Digest.String(), m)
	return []string{img.Name}, wantArchive{
		index:    wantIndex(wantIndexEntry(img.Target, img.Name, img.Name)),
		manifest: wantManifest(wantItem(m)),
		blobs:    m.blobs(),
	}, Result{Images: 1, Blobs: 3}
}

func buildDigestAndTag(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 7)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 1200))
	pinned := s.singleImage("docker.io/library/busybox@"+m.desc.Digest.String(), m)
	tagged := s.singleImage("docker.io/library/busybox:1.37", m)
	return nil, wantArchive{
		index: wantIndex(
			wantIndexEntry(tagged.Target, tagged.Name, "1.37"),
			wantIndexEntry(pinned.Target, pinned.Name, pinned.Name)),
		manifest:     wantManifest(wantItem(m, "docker.io/library/busybox:1.37")),
		repositories: fmt.Sprintf(`{"busybox":{"1.37":%q}}`, top(m)),
		blobs:        m.blobs(),
	}, Result{Images: 2, Blobs: 3}
}

// buildPinnedTag caches one multi-arch image under two names the archive names alike,
// ghcr.io/acme/app:v1 fetched for amd64 and ghcr.io/acme/app:v1@<its index> fetched for
// arm64: one image is written, with both platforms, described in manifest.json by the
// first name's.
func buildPinnedTag(t *testing.T, s *testSource) ([]string, wantArchive, Result) {
	rng := newRand(t, 8)
	amd := s.buildManifest(t, linuxAMD64, randomBytes(rng, 1500), randomBytes(rng, 700))
	arm := s.buildManifest(t, linuxARM64, randomBytes(rng, 1300))
	img := s.indexImage(t, "ghcr.io/acme/app:v1", amd, amd.desc, arm.desc)
	pinned := img
	pinned.Name = img.Name + "@" + img.Target.Digest.String()
	pinned.Manifests = []ocispec.Descriptor{arm.desc}
	pinned.Blobs = sortedBlobs(append(arm.blobs(), img.Target, amd.desc))
	s.images[pinned.Name] = pinned
	return []string{pinned.Name, img.Name}, wantArchive{
		index:        wantIndex(wantIndexEntry(img.Target, img.Name, "v1")),
		manifest:     wantManifest(wantItem(amd, "ghcr.io/acme/app:v1")),
		repositories: fmt.Sprintf(`{"ghcr.io/acme/app":{"v1":%q}}`, top(amd)),
		blobs:        append(amd.blobs(), append(arm.blobs(), img.Target)...),
	}, Result{Images: 1, Blobs: 8}
}
