package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// Shape of the synthetic cache: images share layers from a pool, as images built on a few
// bases do; blobs are small, since ls reads records and file sizes, never content.
const (
	syntheticPool      = 200
	syntheticLayers    = 3
	syntheticLayerSize = 1 << 10
)

// syntheticLs builds a cache of many images with the cache package's API and times dls ls
// on it, as a table and as JSON.
func (b *bench) syntheticLs(ctx context.Context) error {
	n := b.cfg.syntheticLen
	dir := b.path("synthetic-cache")
	defer os.RemoveAll(dir)

	fmt.Fprintf(os.Stderr, "bench: building a synthetic cache of %d images\n", n)
	calls, total, err := buildSynthetic(dir, n, b.cfg.seed)
	if err != nil {
		return fmt.Errorf("build synthetic cache: %w", err)
	}
	k := min(100, n)
	b.addFact(fmt.Sprintf("building a %d-image cache (PutBlob, PutImage)", n),
		"%s; PutImage: first %d calls %s each, last %d calls %s each", seconds(total),
		k, mean(calls[:k]), k, mean(calls[n-k:]))

	b.fig.lsImages = n
	for _, args := range [][]string{{"ls"}, {"ls", "--json"}} {
		full := append([]string{"--log-level", "warn", "--cache", dir}, args...)
		res := runChild(ctx, b.cfg.logPath, b.cfg.dls, full...)
		if res.err != nil {
			return res.err
		}
		if len(args) == 1 {
			b.fig.ls = res.elapsed
		} else {
			b.fig.lsJSON = res.elapsed
		}
		b.addFact(fmt.Sprintf("dls %s on %d images", joinArgs(args), n),
			"%s, peak RSS %s, %d bytes of output", seconds(res.elapsed), rssText(res.maxRSS),
			len(res.stdout))
	}
	return nil
}

// buildSynthetic writes n images into a new cache at dir and returns how long each
// PutImage call took and the whole build.
func buildSynthetic(dir string, n int, seed uint64) ([]time.Duration, time.Duration, error) {
	start := time.Now()
	c, err := cache.Open(dir, cache.Options{Logger: slog.New(slog.NewTextHandler(io.Discard,
		nil))})
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()

	rng := rand.New(rand.NewPCG(seed, seed+7))
	pool := make([]ocispec.Descriptor, syntheticPool)
	for i := range pool {
		data := make([]byte, syntheticLayerSize)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		pool[i] = descriptor(ocispec.MediaTypeImageLayerGzip, data)
		if err := c.PutBlob(pool[i], data); err != nil {
			return nil, 0, err
		}
	}

	calls := make([]time.Duration, 0, n)
	for i := range n {
		img, err := putSyntheticImage(c, i, pool)
		if err != nil {
			return nil, 0, err
		}
		t := time.Now()
		if err := c.PutImage(img); err != nil {
			return nil, 0, err
		}
		calls = append(calls, time.Since(t))
	}
	return calls, time.Since(start), nil
}

// putSyntheticImage stores image i's config and manifest and returns its record.
func putSyntheticImage(c *cache.Cache, i int, pool []ocispec.Descriptor) (cache.Image, error) {
	platform := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Labels":`+
		`{"n":"%d"}},"rootfs":{"type":"layers","diff_ids":[]}}`, i)
	cfgDesc := descriptor(ocispec.MediaTypeImageConfig, cfg)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc}
	for k := range syntheticLayers {
		m.Layers = append(m.Layers, pool[(i*(2*k+1)+k)%len(pool)])
	}
	data, mDesc, err := document(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return cache.Image{}, err
	}
	for _, put := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cfgDesc, cfg}, {mDesc, data}} {
		if err := c.PutBlob(put.desc, put.data); err != nil {
			return cache.Image{}, err
		}
	}

	selected := mDesc
	selected.Platform = &platform
	blobs := append([]ocispec.Descriptor{mDesc, cfgDesc}, m.Layers...)
	return cache.Image{Name: fmt.Sprintf("registry.example/bench/app-%04d:v1", i),
		Target: mDesc, Manifests: []ocispec.Descriptor{selected}, Blobs: blobs}, nil
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data),
		Size: int64(len(data))}
}

func mean(ds []time.Duration) string {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return (sum / time.Duration(max(len(ds), 1))).Round(10 * time.Microsecond).String()
}

func joinArgs(args []string) string { return strings.Join(args, " ") }
