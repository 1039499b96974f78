package testimage

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ZstdLayer returns l with its tar recompressed by zstd instead of gzip. The DiffID is
// unchanged: it is the digest of the tar, whatever compresses it. The encoder runs with
// one worker and fixed settings, so equal layers give equal blobs.
func ZstdLayer(t testing.TB, l Layer) Layer {
	t.Helper()

	zr, err := gzip.NewReader(bytes.NewReader(l.Data))
	if err != nil {
		t.Fatalf("recompress layer %s: %v", l.Digest(), err)
	}

	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("recompress layer %s: %v", l.Digest(), err)
	}

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatalf("recompress layer %s: %v", l.Digest(), err)
	}
	defer enc.Close()

	return Layer{Data: enc.EncodeAll(raw, nil), DiffID: l.DiffID}
}

// WithLayerMediaType returns img with every layer descriptor of its manifest set to
// mediaType, and the manifest blob rebuilt (so its digest changes); the config and the
// layer bytes are kept. It is how a test builds an image whose layers NewImage would label
// gzip, such as zstd layers from ZstdLayer.
func WithLayerMediaType(t testing.TB, img Image, mediaType string) Image {
	t.Helper()

	var m ocispec.Manifest
	if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
		t.Fatalf("decode manifest %s: %v", img.Manifest.Digest(), err)
	}

	out := img
	out.Layers = make([]Blob, len(img.Layers))
	for i, l := range img.Layers {
		l.Descriptor.MediaType = mediaType
		m.Layers[i].MediaType = mediaType
		out.Layers[i] = l
	}

	out.Manifest = newBlob(img.Manifest.Descriptor.MediaType, marshal(t, m))
	plat := img.Platform
	out.Manifest.Descriptor.Platform = &plat
	return out
}
