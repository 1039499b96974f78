package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

const (
	// foreignSize is the size of the foreign layer the tests fetch.
	foreignSize = 50_000
	// mediaTypeDockerForeign is the layer type of Windows base layers in Docker manifests.
	mediaTypeDockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// mediaTypeOCINonDistributable is OCI's (deprecated) equivalent.
	mediaTypeOCINonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)

// foreignSetup describes the image startForeign pushes and the host its layer url names.
type foreignSetup struct {
	manifestType string // MediaTypeDockerManifest or OCI's image manifest
	layerType    string
	// urls lists the layer's urls given the blob store's base URL; nil means one url
	// the store serves.
	urls func(store string) []string
	// served is what the store sends; nil means the layer itself.
	served []byte
	// inRegistry pushes the layer to the registry as well.
	inRegistry bool
	// wrap, when set, wraps the registry handler.
	wrap func(http.Handler) http.Handler
}

// foreignCase is a registry requiring tokens, holding an image whose one layer lists
// urls, and a blob store on another loopback address that those urls name.
type foreignCase struct {
	reg    *registrytest.Registry
	tokens *tokenServer
	store  *blobStore
	client *Client
	ref    reference.Named
	layer  ocispec.Descriptor // as read back from the registry's manifest
	data   []byte             // the layer's bytes
}

// startForeign pushes the image and resolves it, so the layer descriptor (urls and all)
// is the one the registry serves, as a real fetch would see it.
func startForeign(t testing.TB, fs foreignSetup) *foreignCase {
	t.Helper()

	fc := &foreignCase{data: randomBytes(t, testSeed, foreignSize), tokens: startTokenServer(t)}
	served := fc.data
	if fs.served != nil {
		served = fs.served
	}
	fc.store = startBlobStore(t, "127.0.0.2", served)
	fc.store.notFoundPath = "/missing"

	pushToken := fc.tokens.sign([]string{"repository:win/base:pull,push"},
		time.Now().Add(time.Hour))
	fc.reg = registrytest.Start(t, registrytest.Options{
		Auth:      fc.tokens.auth(),
		AllowURLs: []string{`^https?://`},
		Wrap: func(h http.Handler) http.Handler {
			if fs.wrap != nil {
				h = fs.wrap(h)
			}
			return withPushToken(pushToken)(h)
		},
	})
	pushForeignImage(t, fc, fs)

	fc.client = testClient(t, Options{})
	fc.ref = mustRef(t, fc.reg.Host+"/win/base:1")
	m, err := fc.client.Resolve(context.Background(), fc.ref)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	var doc ocispec.Manifest
	if err := json.Unmarshal(m.Bytes, &doc); err != nil || len(doc.Layers) != 1 {
		t.Fatalf("decode manifest: %v (%d layers)", err, len(doc.Layers))
	}
	fc.layer = doc.Layers[0]
	return fc
}

// pushForeignImage pushes a config, the layer when fs.inRegistry, and a manifest whose
// layer descriptor lists the urls.
func pushForeignImage(t testing.TB, fc *foreignCase, fs foreignSetup) {
	t.Helper()

	configType := ocispec.MediaTypeImageConfig
	if fs.manifestType == MediaTypeDockerManifest {
		configType = "application/vnd.docker.container.image.v1+json"
	}
	cfg := []byte(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers"}}`)
	config := ocispec.Descriptor{MediaType: configType, Size: int64(len(cfg)),
		Digest: fc.reg.PushBlob(t, "win/base", cfg)}

	urls := []string{fc.store.URL + "/layer"}
	if fs.urls != nil {
		urls = fs.urls(fc.store.URL)
	}
	layer := ocispec.Descriptor{MediaType: fs.layerType, Size: foreignSize,
		Digest: digest.FromBytes(fc.data), URLs: urls}
	if fs.inRegistry {
		fc.reg.PushBlob(t, "win/base", fc.data)
	}

	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": fs.manifestType,
		"config": config, "layers": []ocispec.Descriptor{layer},
	})
	fc.reg.PushManifest(t, "win/base", "1", fs.manifestType, manifest)
}

// fetch runs FetchBlob for the layer into sink.
func (fc *foreignCase) fetch(sink *memSink) (BlobStats, error) {
	return fc.client.FetchBlob(context.Background(), fc.ref, fc.layer, sink)
}

// storeRanges returns the Range header of each request the store received, and fails
// the test if any carried an Authorization header.
func (fc *foreignCase) storeRanges(t testing.TB) []string {
	t.Helper()

	var ranges []string
	for i, h := range fc.store.seen() {
		if a := h.Get("Authorization"); a != "" {
			t.Errorf("url request %d carried Authorization %q", i, a)
		}
		ranges = append(ranges, h.Get("Range"))
	}
	return ranges
}

// storeStats returns the client's counters for the store's host (zero if never contacted).
func (fc *foreignCase) storeStats() HostStats {
	host := strings.TrimPrefix(fc.store.URL, "http://")
	for _, hs := range fc.client.Stats() {
		if hs.Host == host {
			return hs
		}
	}
	return HostStats{}
}

// commitBlob checks what sink holds against desc, as the cache does before a blob enters
// blobs/: size, then digest.
func commitBlob(sink *memSink, desc ocispec.Descriptor) error {
	if n := int64(sink.buf.Len()); n != desc.Size {
		return fmt.Errorf("commit blob %s: %d bytes, want %d", desc.Digest, n, desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(sink.buf.Bytes()); got != desc.Digest {
		return fmt.Errorf("commit blob %s: bytes hash to %s", desc.Digest, got)
	}
	return nil
}

func TestFetchBlobForeignLayerFromURL(t *testing.T) {
	last := fmt.Sprint(foreignSize - 1)
	tests := []struct {
		name       string
		setup      foreignSetup
		held       int   // bytes in the sink before the call
		cutFirst   int64 // the store cuts its first answer after this many bytes
		wantRanges []string
		wantStats  BlobStats
	}{
		{name: "docker foreign layer only at its url",
			setup:      foreignSetup{manifestType: MediaTypeDockerManifest},
			wantRanges: []string{""}, wantStats: BlobStats{Downloaded: foreignSize}},
		{name: "oci non-distributable layer only at its url",
			setup: foreignSetup{manifestType: ocispec.MediaTypeImageManifest,
				layerType: mediaTypeOCINonDistributable},
			wantRanges: []string{""}, wantStats: BlobStats{Downloaded: foreignSize}},
		{name: "urls in order: plain http refused, 404, then served",
			setup: foreignSetup{manifestType: MediaTypeDockerManifest,
				urls: func(s string) []string {
					return []string{"http://example.invalid/layer", s + "/missing", s + "/layer"}
				}},
			wantRanges: []string{"", ""}, wantStats: BlobStats{Downloaded: foreignSize}},
		{name: "cut body resumes at the url with a closed range",
			setup: foreignSetup{manifestType: MediaTypeDockerManifest}, cutFirst: 20_000,
			wantRanges: []string{"", "bytes=20000-" + last},
			wantStats:  BlobStats{Downloaded: foreignSize, Retries: 1}},
		{name: "partial blob continues at the url",
			setup: foreignSetup{manifestType: MediaTypeDockerManifest}, held: 10_000,
			wantRanges: []string{"bytes=10000-" + last},
			wantStats:  BlobStats{Downloaded: foreignSize - 10_000, Resumed: 10_000}},
		{name: "layer in the registry: url never contacted",
			setup:     foreignSetup{manifestType: MediaTypeDockerManifest, inRegistry: true},
			wantStats: BlobStats{Downloaded: foreignSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup.layerType == "" {
				tt.setup.layerType = mediaTypeDockerForeign
			}
			fc := startForeign(t, tt.setup)
			fc.store.cutFirst = tt.cutFirst
			sink := sinkHolding(fc.data[:tt.held])

			st, err := fc.fetch(sink)
			if err != nil {
				t.Fatalf("FetchBlob: %v", err)
			}
			if err := commitBlob(sink, fc.layer); err != nil {
				t.Fatal(err)
			}

			st.Waited = 0 // backoff with jitter
			if st != tt.wantStats {
				t.Errorf("stats = %+v, want %+v", st, tt.wantStats)
			}
			if got := fc.storeRanges(t); strings.Join(got, ",") !=
				strings.Join(tt.wantRanges, ",") {
				t.Errorf("url Range headers = %q, want %q", got, tt.wantRanges)
			}
			if scopes, _ := fc.tokens.requests(); len(scopes) == 0 {
				t.Errorf("no token was issued: the test shows no withheld Authorization")
			}

			hs := fc.storeStats()
			wantBytes := st.Downloaded
			if tt.setup.inRegistry {
				wantBytes = 0
			}
			if hs.Bytes != wantBytes || hs.Retries != tt.wantStats.Retries {
				t.Errorf("url host stats = %+v, want %d bytes and %d retries", hs,
					wantBytes, tt.wantStats.Retries)
			}
		})
	}
}

func TestFetchBlobForeignLayerWrongBytes(t *testing.T) {
	wrong := randomBytes(t, testSeed+1, foreignSize)
	fc := startForeign(t, foreignSetup{manifestType: MediaTypeDockerManifest,
		layerType: mediaTypeDockerForeign, served: wrong})
	sink := &memSink{}

	if _, err := fc.fetch(sink); err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	if !bytes.Equal(sink.buf.Bytes(), wrong) {
		t.Fatalf("sink holds %d bytes that differ from the %d the url served", sink.buf.Len(),
			len(wrong))
	}

	err := commitBlob(sink, fc.layer)
	want := fmt.Sprintf("commit blob %s: bytes hash to %s", fc.layer.Digest, digest.FromBytes(wrong))
	if err == nil || err.Error() != want {
		t.Errorf("commit error = %v, want %q", err, want)
	}
}

func TestFetchBlobForeignLayerFails(t *testing.T) {
	denyBlobs := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"withheld"}]}`))
		})
	}
	tests := []struct {
		name     string
		setup    foreignSetup
		wantKind error
		// want builds the whole error text from the blob's digest and image, the
		// registry's URL and the store's URL.
		want func(blob, reg, store string) string
	}{
		{name: "url answers 404",
			setup: foreignSetup{urls: func(s string) []string { return []string{s + "/missing"} }},
			want: func(blob, _, s string) string {
				return blob + ": not in the registry, and its urls failed: " + s +
					"/missing: 404 Not Found"
			},
			wantKind: ErrNotFound},
		{name: "plain http to a public host is refused",
			setup: foreignSetup{urls: func(string) []string {
				return []string{"http://example.invalid/layer?sig=SECRET"}
			}},
			want: func(blob, _, _ string) string {
				return blob + ": not in the registry, and its urls failed: " +
					"http://example.invalid/layer: refusing plain http: only https urls " +
					"are fetched, except from loopback hosts"
			}},
		{name: "registry refuses the blob and the url answers 404",
			setup: foreignSetup{wrap: denyBlobs,
				urls: func(s string) []string { return []string{s + "/missing"} }},
			want: func(blob, reg, s string) string {
				return blob + " from " + reg + ": unauthorized: 403 Forbidden: DENIED: " +
					"withheld; and its urls failed: " + s + "/missing: 404 Not Found"
			},
			wantKind: ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup.manifestType, tt.setup.layerType = MediaTypeDockerManifest,
				mediaTypeDockerForeign
			fc := startForeign(t, tt.setup)

			_, err := fc.fetch(&memSink{})
			blob := "fetch blob " + fc.layer.Digest.String() + " of " + fc.ref.String()
			want := tt.want(blob, fc.reg.URL, fc.store.URL)
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
			if tt.wantKind != nil && !errors.Is(err, tt.wantKind) {
				t.Errorf("error is not %v", tt.wantKind)
			}
			fc.storeRanges(t)
		})
	}
}

func TestCheckBlobURL(t *testing.T) {
	tests := []struct {
		name, ref, url string
		wantErr        string // "" means accepted
	}{
		{name: "https to a public host", ref: "mcr.microsoft.com/windows/servercore:ltsc2022",
			url: "https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:00"},
		{name: "plain http to loopback from a loopback registry", ref: "127.0.0.1:5000/a/b",
			url: "http://127.0.0.2:8080/layer"},
		{name: "internal address from an internal registry", ref: "10.0.0.5:5000/a/b",
			url: "https://10.0.0.6/layer"},
		{name: "plain http to a public host", ref: "mcr.microsoft.com/a",
			url: "http://example.com/layer", wantErr: "refusing plain http: only https urls " +
				"are fetched, except from loopback hosts"},
		{name: "another scheme", ref: "mcr.microsoft.com/a", url: "ftp://example.com/layer",
			wantErr: `refusing url scheme "ftp": only https urls are fetched`},
		{name: "no host", ref: "mcr.microsoft.com/a", url: "layer.tar.gz",
			wantErr: "refusing a url without a host"},
		{name: "link-local metadata address from a public registry", ref: "docker.io/a/b",
			url:     "https://169.254.169.254/latest/meta-data",
			wantErr: "refusing an internal address named by an image from docker.io"},
		{name: "loopback over http from a public registry", ref: "docker.io/a/b",
			url:     "http://localhost:2375/layer",
			wantErr: "refusing an internal address named by an image from docker.io"},
		{name: "control character", ref: "docker.io/a/b", url: "https://example.com/\x7f",
			wantErr: "not a valid url: net/url: invalid control character in URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := checkBlobURL(mustRef(t, tt.ref), tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("checkBlobURL(%q) = %v, want accepted", tt.url, err)
			case tt.wantErr == "" && u.String() != tt.url:
				t.Errorf("checkBlobURL(%q) = %s, want it unchanged", tt.url, u)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("checkBlobURL(%q) error = %v, want %q", tt.url, err, tt.wantErr)
			}
		})
	}
}
