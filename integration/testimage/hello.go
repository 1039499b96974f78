package testimage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HelloGreeting is what the hello program (integration/testdata/hello) prints before its
// platform.
const HelloGreeting = "hello from a dls test image"

// HelloEntrypoint runs the binary HelloLayer installs.
var HelloEntrypoint = []string{"/hello"}

// HelloOutput is the exact output of the hello program built for platform p.
func HelloOutput(p ocispec.Platform) string {
	return fmt.Sprintf("%s (%s/%s)\n", HelloGreeting, p.OS, p.Architecture)
}

// helloBuilds caches one build per architecture for the life of the test binary: building
// takes seconds, and every test that runs an image needs the same bytes.
var helloBuilds struct {
	sync.Mutex
	bins map[string][]byte
}

// HelloLayer returns a layer holding the hello program for GOARCH arch at /hello, mode 0755.
func HelloLayer(t testing.TB, arch string) Layer {
	t.Helper()

	return NewLayer(t, File{Name: "hello", Mode: 0o755, Data: HelloBinary(t, arch)})
}

// HelloBinary returns the hello program built as a static Linux binary for GOARCH arch
// (CGO_ENABLED=0, -trimpath, stripped). It needs the go command on PATH, which go test
// provides, and the source tree this file was compiled from.
func HelloBinary(t testing.TB, arch string) []byte {
	t.Helper()

	helloBuilds.Lock()
	defer helloBuilds.Unlock()
	if bin, ok := helloBuilds.bins[arch]; ok {
		return bin
	}

	bin := buildHello(t, arch)
	if helloBuilds.bins == nil {
		helloBuilds.bins = map[string][]byte{}
	}
	helloBuilds.bins[arch] = bin
	return bin
}

func buildHello(t testing.TB, arch string) []byte {
	t.Helper()

	// The source sits next to this package in the module; runtime.Caller finds it from
	// any test's working directory.
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("build hello: cannot locate the testimage source directory")
	}
	src := filepath.Join(filepath.Dir(self), "..", "testdata", "hello")

	out, err := os.MkdirTemp("", "dls-hello-")
	if err != nil {
		t.Fatalf("build hello for %s: %v", arch, err)
	}
	defer os.RemoveAll(out)

	bin := filepath.Join(out, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello for linux/%s in %s: %v\n%s", arch, src, err, msg)
	}

	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("build hello for %s: %v", arch, err)
	}
	return data
}
