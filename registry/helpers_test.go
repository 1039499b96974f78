package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// testSeed fixes the random content of every test; it is logged by randomBytes.
const testSeed = 20260806

// randomBytes returns n bytes from a generator seeded with seed (logged).
func randomBytes(t testing.TB, seed uint64, n int) []byte {
	t.Helper()

	t.Logf("random data: seed %d, %d bytes", seed, n)
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testClient is a client with fast retries and a debug logger writing to the test log.
func testClient(t testing.TB, opts Options) *Client {
	t.Helper()

	if opts.Logger == nil {
		h := slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})
		opts.Logger = slog.New(h)
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain() // no logins from the machine running tests
	}
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin = time.Millisecond
	}
	if opts.RetryWaitMax == 0 {
		opts.RetryWaitMax = 20 * time.Millisecond
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// mustRef parses a reference or fails the test.
func mustRef(t testing.TB, s string) reference.Named {
	t.Helper()

	ref, err := ParseReference(s)
	if err != nil {
		t.Fatalf("ParseReference(%q): %v", s, err)
	}
	return ref
}

// testImage is an image pushed to a test registry.
type testImage struct {
	config, layer  ocispec.Descriptor
	layerBytes     []byte
	manifest       []byte
	manifestDigest digest.Digest
	manifestType   string
}

// pushImage pushes a config, one random layer of layerSize bytes and a manifest of
// mediaType (OCI or Docker schema 2) to repo under tag.
func pushImage(t testing.TB, reg *registrytest.Registry, repo, tag, mediaType string,
	seed uint64, layerSize int) testImage {
	t.Helper()

	layerType, configType := ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig
	if mediaType == MediaTypeDockerManifest {
		layerType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
		configType = "application/vnd.docker.container.image.v1+json"
	}

	img := testImage{layerBytes: randomBytes(t, seed, layerSize), manifestType: mediaType}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`)
	img.config = ocispec.Descriptor{MediaType: configType, Size: int64(len(cfg)),
		Digest: reg.PushBlob(t, repo, cfg)}
	img.layer = ocispec.Descriptor{MediaType: layerType, Size: int64(layerSize),
		Digest: reg.PushBlob(t, repo, img.layerBytes)}

	img.manifest = mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"config":        img.config,
		"layers":        []ocispec.Descriptor{img.layer},
	})
	img.manifestDigest = reg.PushManifest(t, repo, tag, mediaType, img.manifest)
	return img
}

// pushIndex pushes an index of mediaType listing manifests under tag.
func pushIndex(t testing.TB, reg *registrytest.Registry, repo, tag, mediaType string,
	children ...testImage) ([]byte, digest.Digest) {
	t.Helper()

	var descs []ocispec.Descriptor
	for _, c := range children {
		descs = append(descs, ocispec.Descriptor{
			MediaType: c.manifestType, Digest: c.manifestDigest, Size: int64(len(c.manifest)),
			Platform: &ocispec.Platform{Architecture: "amd64", OS: "linux"},
		})
	}
	data := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": mediaType, "manifests": descs,
	})
	return data, reg.PushManifest(t, repo, tag, mediaType, data)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return data
}

// memSink is an in-memory BlobSink that counts resets.
type memSink struct {
	buf    bytes.Buffer
	resets int
}

func (s *memSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memSink) Offset() int64               { return int64(s.buf.Len()) }

func (s *memSink) Reset() error {
	s.buf.Reset()
	s.resets++
	return nil
}

// sinkHolding returns a sink already holding prefix, as after an interrupted run.
func sinkHolding(prefix []byte) *memSink {
	s := &memSink{}
	s.buf.Write(prefix)
	return s
}

// logBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the log lines written so far.
func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.buf.String()), "\n")
}

// linesAt returns the lines logged at level ("WARN", "DEBUG", ...), without the level.
func (l *logBuffer) linesAt(level string) []string {
	var out []string
	for _, line := range l.lines() {
		if rest, ok := strings.CutPrefix(line, "level="+level+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// capturingLogger returns a debug logger writing to the test log and to the returned
// buffer, without timestamps so tests can compare whole lines.
func capturingLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	t.Helper()

	lb := &logBuffer{}
	h := slog.NewTextHandler(io.MultiWriter(t.Output(), lb), &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), lb
}
