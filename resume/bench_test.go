package resume_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/dlsproject/dls/registry"
	"github.com/dlsproject/dls/resume"
)

// Shapes of the transfer benchmarks: many small blobs show the cost each blob carries
// (request, partial file, fsyncs, index write); one large blob shows throughput.
const (
	benchSmallImages = 20
	benchSmallLayers = 10
	benchSmallSize   = 4 << 10
	benchLargeSize   = 128 << 20
	benchSeed        = 11
)

func benchLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// benchRefs parses repo:tag paths as references at reg.
func benchRefs(b *testing.B, reg *registrytest.Registry, paths []string) []reference.Named {
	b.Helper()
	var refs []reference.Named
	for _, p := range paths {
		ref, err := registry.ParseReference(reg.Host + "/" + p)
		if err != nil {
			b.Fatalf("parse %s: %v", p, err)
		}
		refs = append(refs, ref)
	}
	return refs
}

// benchFetch resolves and transfers refs into a new cache under root. Only the fetch is
// timed: the timer is stopped around opening and removing the cache.
func benchFetch(b *testing.B, root string, refs []reference.Named) resume.Stats {
	b.Helper()
	b.StopTimer()
	dir, err := os.MkdirTemp(root, "cache-")
	if err != nil {
		b.Fatal(err)
	}
	store, err := cache.Open(dir, cache.Options{Logger: benchLogger()})
	if err != nil {
		b.Fatalf("open cache: %v", err)
	}
	client, err := registry.NewClient(registry.Options{Logger: benchLogger()})
	if err != nil {
		b.Fatalf("new client: %v", err)
	}
	f := resume.New(client, store, resume.Options{Logger: benchLogger()})
	b.StartTimer()

	ctx := context.Background()
	plan, err := f.Resolve(ctx, refs)
	if err == nil {
		err = f.Transfer(ctx, plan)
	}
	if err != nil || len(plan.Failed) > 0 {
		b.Fatalf("fetch: %v, failed: %v", err, plan.Failed)
	}

	b.StopTimer()
	stats := f.Stats(plan, 0)
	if err := store.Close(); err != nil {
		b.Fatalf("close cache: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	return stats
}

// BenchmarkTransferSmallBlobs fetches 20 images of 10 layers of 4 KiB each (240 blobs with
// configs and manifests) from a loopback registry into an empty cache, and reports the
// time per blob.
func BenchmarkTransferSmallBlobs(b *testing.B) {
	reg := registrytest.Start(b, registrytest.Options{})
	rng := testimage.NewRand(b, benchSeed)
	var paths []string
	for i := range benchSmallImages {
		var layers []testimage.Layer
		for k := range benchSmallLayers {
			name := fmt.Sprintf("data/%d.bin", k)
			layers = append(layers, testimage.RandomLayer(b, rng, name, benchSmallSize))
		}
		img := testimage.NewImage(b, testimage.ImageOptions{Layers: layers})
		repo := fmt.Sprintf("bench/small-%02d", i)
		img.Push(b, reg, repo, "v1")
		paths = append(paths, repo+":v1")
	}
	refs, root := benchRefs(b, reg, paths), b.TempDir()

	var blobs int
	for b.Loop() {
		blobs = benchFetch(b, root, refs).Blobs
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*blobs), "ns/blob")
	b.ReportMetric(float64(blobs), "blobs/op")
}

// BenchmarkTransferLargeBlob fetches one image whose single layer is 128 MiB of random
// bytes (left uncompressed: dls never inflates layers, and gzip would dominate the setup).
func BenchmarkTransferLargeBlob(b *testing.B) {
	reg := registrytest.Start(b, registrytest.Options{})
	data := testimage.RandomBytes(testimage.NewRand(b, benchSeed), benchLargeSize)
	layer := testimage.Layer{Data: data, DiffID: digest.FromBytes(data)}
	img := testimage.NewImage(b, testimage.ImageOptions{Layers: []testimage.Layer{layer}})
	img.Push(b, reg, "bench/large", "v1")
	refs, root := benchRefs(b, reg, []string{"bench/large:v1"}), b.TempDir()

	b.SetBytes(benchLargeSize)
	for b.Loop() {
		benchFetch(b, root, refs)
	}
}
