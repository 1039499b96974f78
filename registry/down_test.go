package registry

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dlsproject/dls/integration/registrytest"
)

// stalledServer accepts TCP connections and never sends a byte, like a mirror whose
// proxy hangs. It counts the connections it accepted.
type stalledServer struct {
	addr    string
	accepts atomic.Int32
}

// startStalled starts a stalledServer on loopback; cleanup closes it and its connections.
func startStalled(t testing.TB) *stalledServer {
	t.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &stalledServer{addr: l.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

func TestDeadMirrorIsSkippedAfterFirstFailure(t *testing.T) {
	const images = 6
	tests := []struct {
		name    string
		dead    func(t *testing.T) (endpoint string, accepts func() int32)
		maxConn int32
	}{
		{"accepts and never answers", func(t *testing.T) (string, func() int32) {
			s := startStalled(t)
			return "http://" + s.addr, s.accepts.Load
		}, 2},
		{"accepts and never answers, no scheme", func(t *testing.T) (string, func() int32) {
			s := startStalled(t)
			return s.addr, s.accepts.Load
		}, 2},
		{"refuses connections", func(t *testing.T) (string, func() int32) {
			return "http://" + registrytest.Unreachable(t), nil
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := registrytest.Start(t, registrytest.Options{})
			imgs := make([]testImage, images)
			for i := range imgs {
				imgs[i] = pushImage(t, good, "a/img"+string(rune('0'+i)), "1",
					ocispec.MediaTypeImageManifest, testSeed+uint64(i), 500)
			}
			dead, accepts := tt.dead(t)
			origin := registrytest.Unreachable(t)
			log, lines := capturingLogger(t)
			c := testClient(t, Options{Logger: log, IdleTimeout: 300 * time.Millisecond,
				Config: &RegistriesConfig{Mirrors: map[string]Mirror{
					origin: {Endpoints: []string{dead, good.URL}},
				}}})

			fetchAll(t, c, origin, imgs)

			if accepts != nil && accepts() > tt.maxConn {
				t.Errorf("dead mirror accepted %d connections, want at most %d",
					accepts(), tt.maxConn)
			}
			if n := good.Requests("GET manifest"); n != images {
				t.Errorf("good mirror served %d manifest GETs, want %d", n, images)
			}
			warns := lines.linesAt("WARN")
			if len(warns) != 1 || !strings.HasPrefix(warns[0],
				`msg="endpoint cannot be reached; skipping it" endpoint=`) {
				t.Errorf("warnings = %q, want one \"endpoint cannot be reached\"", warns)
			}
		})
	}
}

// fetchAll resolves every image of imgs (in repository a/img<i> at registry) and fetches
// its layer, all at once, and checks the digests and bytes.
func fetchAll(t *testing.T, c *Client, registry string, imgs []testImage) {
	t.Helper()

	var g errgroup.Group
	for i, img := range imgs {
		g.Go(func() error {
			ref := mustRef(t, registry+"/a/img"+string(rune('0'+i))+":1")
			m, err := c.Resolve(context.Background(), ref)
			if err != nil {
				return err
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("image %d: digest = %s, want %s", i, m.Descriptor.Digest,
					img.manifestDigest)
			}
			sink := &memSink{}
			if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
				return err
			}
			if string(sink.buf.Bytes()) != string(img.layerBytes) {
				t.Errorf("image %d: layer bytes differ from the pushed layer", i)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
}
