package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer size bounds of the corpus: the smallest layer is about minLayer bytes and the
// largest maxLayerShare of the corpus, capped at maxLayerCap (a 2 GB corpus reaches it).
const (
	minLayer      = 1 << 10
	maxLayerShare = 0.15
	maxLayerCap   = 300 << 20
	// smallLayer is the size under which a layer is gzip'd properly; larger random layers
	// are stored in gzip's uncompressed blocks, since deflate gains nothing on random bytes
	// and would take most of the corpus build time.
	smallLayer = 1 << 20
)

// baseShares are the shared base layers, as shares of the corpus; image i uses base i%3.
var baseShares = []float64{0.06, 0.04, 0.02}

// created is the time written into tar headers and configs, so the corpus is reproducible.
var created = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// layerPlan is one layer to build: its approximate blob size, its kind, and the images
// (indexes into the list) that use it, ascending.
type layerPlan struct {
	size         int64
	compressible bool
	users        []int
}

// planLayers lays out the corpus: three base layers shared by a third of the images each,
// one small compressible layer shared by all, and own layers of log-uniform sizes between
// minLayer and the largest layer until the distinct bytes reach total. Every fourth own
// layer is compressible text stored as an uncompressed tar.
func planLayers(rng *rand.Rand, images int, total int64) []layerPlan {
	largest := min(int64(float64(total)*maxLayerShare), maxLayerCap)
	largest = max(largest, 1<<20)

	var plans []layerPlan
	budget := total - minLayer
	for b, share := range baseShares {
		p := layerPlan{size: int64(float64(total) * share)}
		for i := b; i < images; i += len(baseShares) {
			p.users = append(p.users, i)
		}
		plans = append(plans, p)
		budget -= p.size
	}
	shared := layerPlan{size: minLayer, compressible: true}
	for i := range images {
		shared.users = append(shared.users, i)
	}
	plans = append(plans, shared)

	own := ownLayerSizes(rng, largest, budget)
	rng.Shuffle(len(own), func(i, j int) { own[i], own[j] = own[j], own[i] })
	for k, size := range own {
		plans = append(plans, layerPlan{size: size, compressible: k%4 == 1,
			users: []int{k % images}})
	}
	return plans
}

// ownLayerSizes draws sizes until they add up to budget: the largest first, one of
// minLayer, then log-uniform draws up to half the largest, the last one trimmed.
func ownLayerSizes(rng *rand.Rand, largest, budget int64) []int64 {
	sizes := []int64{largest, minLayer}
	left := budget - largest - minLayer
	lo, hi := math.Log(minLayer), math.Log(float64(largest/2))
	for left >= minLayer {
		size := min(int64(math.Exp(lo+rng.Float64()*(hi-lo))), left)
		sizes = append(sizes, size)
		left -= size
	}
	return sizes
}

// builtLayer is a layer blob ready to push.
type builtLayer struct {
	data   []byte
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// buildLayer makes a tar holding one file so that the blob is about p.size bytes: random
// bytes gzip'd, or compressible text left uncompressed (media type ...layer.v1.tar).
func buildLayer(src *rand.ChaCha8, p layerPlan) (builtLayer, error) {
	// A tar adds a header and a trailer of 3 blocks; small layers are gzip'd, which takes
	// them back out, so only large layers are trimmed to land near p.size.
	const tarOverhead = 3 * 512
	n := p.size
	if n >= smallLayer {
		n -= tarOverhead
	}
	content := make([]byte, n)
	if p.compressible {
		fillText(src, content)
	} else {
		_, _ = src.Read(content) // ChaCha8.Read never fails
	}

	raw, err := tarOf(content)
	if err != nil {
		return builtLayer{}, err
	}
	l := builtLayer{data: raw, diffID: digest.FromBytes(raw)}
	mediaType := ocispec.MediaTypeImageLayer
	if !p.compressible {
		mediaType = ocispec.MediaTypeImageLayerGzip
		level := gzip.NoCompression
		if len(raw) < smallLayer {
			level = gzip.DefaultCompression
		}
		if l.data, err = gzipOf(raw, level); err != nil {
			return builtLayer{}, err
		}
	}
	l.desc = ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(l.data),
		Size: int64(len(l.data))}
	return l, nil
}

// tarOf returns a tar with content as the file data/blob.bin, fixed owner, mode and time.
func tarOf(content []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(content) + 4096)
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "data/blob.bin", Mode: 0o644, Size: int64(len(content)),
		Typeflag: tar.TypeReg, ModTime: created}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write layer tar header: %w", err)
	}

	if _, err := tw.Write(content); err != nil {
		return nil, fmt.Errorf("write layer tar: %w", err)
	}

	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipOf compresses raw at level with no name or time in the header.
func gzipOf(raw []byte, level int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw) + len(raw)/1000 + 64)
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}

	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}

	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	return buf.Bytes(), nil
}

// words is the vocabulary of compressible layers: text-like content that gzip shrinks
// about fourfold, like the config files and scripts of real layers.
var words = []string{"the ", "image ", "layer ", "config ", "registry ", "blob ", "cache ",
	"digest ", "fetch ", "archive ", "kubernetes ", "node ", "pod ", "export ", "path=",
	"/usr/lib/", "/etc/", "0644 ", "root ", "true\n", "false\n", "# comment\n", "{\"a\": ",
	"}\n", "version ", "1.2.3 ", "amd64 ", "linux "}

// fillText fills buf with words drawn from src.
func fillText(src *rand.ChaCha8, buf []byte) {
	for i := 0; i < len(buf); {
		w := words[src.Uint64()%uint64(len(words))]
		i += copy(buf[i:], w)
	}
}
