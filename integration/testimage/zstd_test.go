package testimage

import (
	"encoding/json"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestZstdLayer(t *testing.T) {
	l := NewLayer(t, File{Name: "etc/motd", Data: []byte("hi\n")})
	z := ZstdLayer(t, l)

	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(z.Data, nil)
	if err != nil {
		t.Fatalf("decode zstd layer: %v", err)
	}

	if got := digest.FromBytes(raw); got != l.DiffID || z.DiffID != l.DiffID {
		t.Fatalf("zstd layer holds a tar hashing to %s, DiffID %s; want both %s", got,
			z.DiffID, l.DiffID)
	}
	if again := ZstdLayer(t, l); again.Digest() != z.Digest() {
		t.Fatalf("two recompressions differ: %s and %s", z.Digest(), again.Digest())
	}
}

func TestWithLayerMediaType(t *testing.T) {
	rng := NewRand(t, 5)
	layers := []Layer{ZstdLayer(t, RandomLayer(t, rng, "a", 10)),
		ZstdLayer(t, RandomLayer(t, rng, "b", 10))}
	img := NewImage(t, ImageOptions{Platform: LinuxARM64, Layers: layers})
	z := WithLayerMediaType(t, img, ocispec.MediaTypeImageLayerZstd)

	var m ocispec.Manifest
	if err := json.Unmarshal(z.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}

	if z.Manifest.Digest() != digest.FromBytes(z.Manifest.Data) ||
		z.Manifest.Digest() == img.Manifest.Digest() {
		t.Fatalf("manifest digest %s: want the new bytes' digest, not the old %s",
			z.Manifest.Digest(), img.Manifest.Digest())
	}
	if m.Config.Digest != img.Config.Digest() || len(m.Layers) != 2 ||
		FormatPlatform(*z.Manifest.Descriptor.Platform) != "linux/arm64" {
		t.Fatalf("manifest = %s, platform %v", z.Manifest.Data, z.Manifest.Descriptor.Platform)
	}
	for i, d := range m.Layers {
		if d.MediaType != ocispec.MediaTypeImageLayerZstd || d.Digest != layers[i].Digest() ||
			z.Layers[i].Descriptor.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("layer %d = %+v, want %s %s", i, d, ocispec.MediaTypeImageLayerZstd,
				layers[i].Digest())
		}
	}
}
