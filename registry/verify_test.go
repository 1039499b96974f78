package registry

import (
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestManifestMediaType(t *testing.T) {
	ref := mustRef(t, "example.com/a/b:1")
	tests := []struct {
		name, contentType, body string
		want, wantErr           string
	}{
		{"body media type wins over a generic content type", "application/json",
			`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":{}}`,
			MediaTypeDockerManifest, ""},
		{"content type when the body has none", ocispec.MediaTypeImageIndex,
			`{"schemaVersion":2,"manifests":[]}`, ocispec.MediaTypeImageIndex, ""},
		{"index inferred from manifests", "application/octet-stream",
			`{"schemaVersion":2,"manifests":[]}`, ocispec.MediaTypeImageIndex, ""},
		{"manifest inferred from config", "",
			`{"schemaVersion":2,"config":{},"layers":[]}`, ocispec.MediaTypeImageManifest, ""},
		{"content type disagrees with the body", ocispec.MediaTypeImageManifest,
			`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `"}`,
			"", "disagrees with the manifest's mediaType"},
		{"unknown media type", "application/vnd.example+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.example+json"}`,
			"", `manifest media type "application/vnd.example+json"`},
		{"not json", ocispec.MediaTypeImageManifest, `<html>`, "", "decode manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifestMediaType(ref, tt.contentType, []byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("manifestMediaType = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestUnknownMediaTypeIsUnsupported(t *testing.T) {
	_, err := manifestMediaType(mustRef(t, "a"), "", []byte(`{"schemaVersion":2}`))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("error = %v, want ErrUnsupported", err)
	}
}

func TestContentRangeStart(t *testing.T) {
	tests := []struct {
		value   string
		want    int64
		wantErr bool
	}{
		{"bytes 100-999/1000", 100, false},
		{"bytes 0-999/*", 0, false},
		{"bytes 100-999/2000", 0, true},
		{"bytes 100-1000/1000", 0, true},
		{"bytes 500-100/1000", 0, true},
		{"100-999/1000", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := contentRangeStart(tt.value, 1000)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("contentRangeStart(%q) = %d, %v; want %d, error %v", tt.value, got,
					err, tt.want, tt.wantErr)
			}
		})
	}
}
