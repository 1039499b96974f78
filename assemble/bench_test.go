package assemble

import (
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchLayers and benchLayerSize shape the benchmark image: a few layers of the size real
// base images have.
const (
	benchLayers    = 3
	benchLayerSize = 64 << 20
)

// benchSource stores one image of benchLayers uncompressed random layers (gzipping 192 MiB
// would dominate the setup) and returns its name and total blob bytes.
func benchSource(b *testing.B) (*testSource, string, int64) {
	b.Helper()
	s := newTestSource(b)
	rng := newRand(b, 30)
	var m builtManifest
	for range benchLayers {
		raw := make([]byte, benchLayerSize)
		for i := 0; i < len(raw); i += 8 {
			binary.LittleEndian.PutUint64(raw[i:], rng.Uint64())
		}

		layer := s.putBlob(b, ocispec.MediaTypeImageLayer, raw)
		m.layers = append(m.layers, layer)
		m.diffIDs = append(m.diffIDs, layer.Digest)
	}

	m.config = s.putJSON(b, ocispec.MediaTypeImageConfig, ocispec.Image{
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: m.diffIDs},
	})
	m.desc = s.putJSON(b, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    m.config,
		Layers:    m.layers,
	})
	img := s.singleImage("docker.io/library/bench:1", m)
	var total int64
	for _, d := range img.Blobs {
		total += d.Size
	}

	return s, img.Name, total
}

// BenchmarkWrite measures archive throughput in blob bytes per second: hashing and tar
// framing alone (to io.Discard), through WriteFile for each output format, and for a plain
// tar of blobs copied without hashing.
func BenchmarkWrite(b *testing.B) {
	s, name, total := benchSource(b)
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			_, err := Write(context.Background(), s, io.Discard, quietOptions(name))
			if err != nil {
				b.Fatal(err)
			}
		}
	})

	// unhashed is images.tar from files the source vouches for, as from the cache that
	// fetched them: framing and copying only.
	b.Run("images.tar-unhashed", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "images.tar")
		s.unchanged = map[digest.Digest]bool{}
		for _, d := range s.images[name].Blobs {
			s.unchanged[d.Digest] = true
		}
		defer func() { s.unchanged = nil }()

		b.SetBytes(total)
		for b.Loop() {
			_, err := WriteFile(context.Background(), s, path, quietOptions(name))
			if err != nil {
				b.Fatal(err)
			}
		}
	})

	for _, out := range []string{"images.tar", "images.tar.gz", "images.tar.zst"} {
		b.Run(out, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), out)
			b.SetBytes(total)
			for b.Loop() {
				_, err := WriteFile(context.Background(), s, path, quietOptions(name))
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
