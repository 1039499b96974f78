package cache_test

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// Sizes of the benchmarks: a large layer for ingest, and an index the size of a fleet's
// cache (10,000 blobs, 1,000 images of 10 blobs each).
const (
	benchIngestSize = 64 << 20
	benchChunk      = 1 << 20
	benchBlobs      = 10_000
	benchImages     = 1_000
	benchPerImage   = 10
	benchSeed       = 7
)

func benchRand(b *testing.B) *rand.Rand {
	b.Helper()
	b.Logf("random data seed %d", benchSeed)
	return rand.New(rand.NewPCG(benchSeed, benchSeed))
}

func benchBytes(rng *rand.Rand, n int) []byte {
	data := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	return data
}

func benchOpen(b *testing.B, dir string) *cache.Cache {
	b.Helper()
	c, err := cache.Open(dir, cache.Options{Logger: slog.New(slog.NewTextHandler(io.Discard,
		nil))})
	if err != nil {
		b.Fatalf("open cache %s: %v", dir, err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkIngest measures digest verification on the fetch path: a 64 MiB blob written
// to an Ingest in 1 MiB chunks and committed (hash, fsync, verify, rename, index), beside
// its two parts alone: hashing the bytes, and writing and fsyncing a plain file.
func BenchmarkIngest(b *testing.B) {
	data := benchBytes(benchRand(b), benchIngestSize)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest: digest.FromBytes(data), Size: int64(len(data))}

	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(benchIngestSize)
		for b.Loop() {
			if got := digest.FromBytes(data); got != desc.Digest {
				b.Fatalf("digest %s, want %s", got, desc.Digest)
			}
		}
	})
	b.Run("file-write-fsync", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "plain")
		b.SetBytes(benchIngestSize)
		for b.Loop() {
			benchWriteFile(b, path, data)
		}
	})
	b.Run("ingest-commit", func(b *testing.B) {
		c := benchOpen(b, b.TempDir())
		b.SetBytes(benchIngestSize)
		for b.Loop() {
			benchIngestOnce(b, c, desc, data)
		}
	})
}

func benchWriteFile(b *testing.B, path string, data []byte) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += benchChunk {
		if _, err := f.Write(data[off:min(off+benchChunk, len(data))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchIngestOnce writes data through a fresh Ingest and commits it; committing a blob
// already present replaces it, so every iteration does the full work.
func benchIngestOnce(b *testing.B, c *cache.Cache, desc ocispec.Descriptor, data []byte) {
	b.Helper()
	ing, err := c.Ingest(desc)
	if err != nil {
		b.Fatalf("ingest %s: %v", desc.Digest, err)
	}
	defer ing.Close()
	for off := 0; off < len(data); off += benchChunk {
		if _, err := ing.Write(data[off:min(off+benchChunk, len(data))]); err != nil {
			b.Fatalf("write %s: %v", desc.Digest, err)
		}
	}
	if err := ing.Commit(); err != nil {
		b.Fatalf("commit %s: %v", desc.Digest, err)
	}
}

// lookupFixture is a cache holding benchBlobs blobs and benchImages images.
type lookupFixture struct {
	c      *cache.Cache
	blobs  []ocispec.Descriptor
	images []cache.Image
}

// newLookupFixture writes the blob files straight into blobs/sha256 and lets Open index
// them, as it does for blobs a crash left unindexed (10,000 PutBlob calls would take a
// minute of fsyncs), then records the images with PutImage.
func newLookupFixture(b *testing.B) *lookupFixture {
	b.Helper()
	dir := b.TempDir()
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := benchRand(b)
	fx := &lookupFixture{}
	for range benchBlobs {
		data := benchBytes(rng, 64)
		d := digest.FromBytes(data)
		if err := os.WriteFile(filepath.Join(blobDir, d.Encoded()), data, 0o444); err != nil {
			b.Fatal(err)
		}
		fx.blobs = append(fx.blobs, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: 64})
	}
	fx.c = benchOpen(b, dir)

	for i := range benchImages {
		blobs := fx.blobs[i*benchPerImage : (i+1)*benchPerImage]
		img := cache.Image{Name: fmt.Sprintf("registry.example/team/app-%04d:v1", i),
			Target: blobs[0], Manifests: blobs[:1], Blobs: blobs}
		if err := fx.c.PutImage(img); err != nil {
			b.Fatalf("put image %s: %v", img.Name, err)
		}
		fx.images = append(fx.images, img)
	}
	return fx
}

// BenchmarkLookups measures the index reads the fetch, assemble and ls paths make on a
// cache of 10,000 blobs and 1,000 images, and one more PutImage into it.
func BenchmarkLookups(b *testing.B) {
	fx := newLookupFixture(b)
	b.Run("HasBlob", func(b *testing.B) {
		i := 0
		for b.Loop() {
			d := fx.blobs[i%len(fx.blobs)]
			if size, ok := fx.c.HasBlob(d.Digest); !ok || size != d.Size {
				b.Fatalf("HasBlob(%s) = %d, %v", d.Digest, size, ok)
			}
			i++
		}
	})
	b.Run("Image", func(b *testing.B) {
		i := 0
		for b.Loop() {
			name := fx.images[i%len(fx.images)].Name
			if _, err := fx.c.Image(name); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Images", func(b *testing.B) {
		for b.Loop() {
			images, err := fx.c.Images()
			if err != nil || len(images) != benchImages {
				b.Fatalf("Images: %d images, %v", len(images), err)
			}
		}
	})
	b.Run("Missing", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if missing := fx.c.Missing(fx.images[i%len(fx.images)]); len(missing) != 0 {
				b.Fatalf("Missing: %d blobs", len(missing))
			}
			i++
		}
	})
	b.Run("PutImage", func(b *testing.B) {
		img := fx.images[0]
		for b.Loop() {
			if err := fx.c.PutImage(img); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Shape of BenchmarkIngestSmallBlobs: as many 4 KiB blobs as the small-blob transfer
// benchmark of resume commits, by one goroutine and by as many as a fetch runs at once.
const (
	benchSmallBlobs       = 240
	benchSmallSize        = 4 << 10
	benchSmallConcurrency = 6 // resume.DefaultConcurrency
)

// BenchmarkIngestSmallBlobs measures what each blob costs to commit when its bytes cost
// next to nothing: the partial file's fsync, the rename, the directory fsync and the index
// transaction. It reports the time per blob.
func BenchmarkIngestSmallBlobs(b *testing.B) {
	rng := benchRand(b)
	blobs := make([][]byte, benchSmallBlobs)
	for i := range blobs {
		blobs[i] = benchBytes(rng, benchSmallSize)
	}

	for _, workers := range []int{1, benchSmallConcurrency} {
		b.Run(fmt.Sprintf("goroutines-%d", workers), func(b *testing.B) {
			c := benchOpen(b, b.TempDir())
			for b.Loop() {
				benchIngestAll(b, c, blobs, workers)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(blobs)),
				"ns/blob")
		})
	}
}

// benchIngestAll commits every blob through an Ingest, workers at a time.
func benchIngestAll(b *testing.B, c *cache.Cache, blobs [][]byte, workers int) {
	b.Helper()
	next := make(chan []byte)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for data := range next {
				desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip,
					Digest: digest.FromBytes(data), Size: int64(len(data))}
				if err := benchIngestErr(c, desc, data); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for _, data := range blobs {
		next <- data
	}
	close(next)
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// benchIngestErr writes data through a fresh Ingest and commits it, from any goroutine.
func benchIngestErr(c *cache.Cache, desc ocispec.Descriptor, data []byte) error {
	ing, err := c.Ingest(desc)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	defer ing.Close()
	if _, err := ing.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", desc.Digest, err)
	}
	if err := ing.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", desc.Digest, err)
	}
	return nil
}
