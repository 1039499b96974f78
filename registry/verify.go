package registry

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 1 media types, recognised only to refuse them clearly.
const (
	mediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// knownManifestTypes are the media types Resolve and FetchManifest return.
var knownManifestTypes = map[string]bool{
	ocispec.MediaTypeImageIndex:    true,
	ocispec.MediaTypeImageManifest: true,
	MediaTypeDockerManifestList:    true,
	MediaTypeDockerManifest:        true,
}

// manifestProbe holds the fields that tell manifest kinds apart.
type manifestProbe struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	FSLayers      json.RawMessage `json:"fsLayers"`
	Manifests     json.RawMessage `json:"manifests"`
	Config        json.RawMessage `json:"config"`
}

// verifyManifest hashes body and checks it: against want when a digest was asked for,
// else against Docker-Content-Digest when the registry sent one in the same algorithm.
// It returns the manifest with its media type, or refuses schema 1 and unknown types.
func verifyManifest(ref reference.Named, resp *http.Response, body []byte,
	want digest.Digest) (Manifest, error) {
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	if !alg.Available() {
		return Manifest{}, kindErrorf(ErrUnsupported, "digest algorithm %q is not supported", alg)
	}
	got := alg.FromBytes(body)

	if want != "" && got != want {
		return Manifest{}, fmt.Errorf("manifest bytes hash to %s, want %s", got, want)
	}
	if hint := digest.Digest(resp.Header.Get("Docker-Content-Digest")); want == "" &&
		hint.Validate() == nil && hint.Algorithm() == alg && hint != got {
		return Manifest{}, fmt.Errorf("manifest bytes hash to %s, registry says %s", got, hint)
	}

	mt, err := manifestMediaType(ref, resp.Header.Get("Content-Type"), body)
	if err != nil {
		return Manifest{}, err
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(body))}
	return Manifest{Descriptor: desc, Bytes: body}, nil
}

// manifestMediaType finds a manifest's media type: the body's mediaType, else the
// Content-Type, else inferred from its fields. The two must agree when both are known
// types. Schema 1 (by type or by its fsLayers field) is refused, naming the image.
func manifestMediaType(ref reference.Named, contentType string, body []byte) (string, error) {
	var p manifestProbe
	if err := json.Unmarshal(body, &p); err != nil {
		return "", fmt.Errorf("decode manifest: %w", err)
	}

	ct, _, _ := mime.ParseMediaType(contentType)
	if ct == mediaTypeSchema1 || ct == mediaTypeSchema1Signed || p.SchemaVersion == 1 ||
		p.FSLayers != nil || p.MediaType == mediaTypeSchema1 ||
		p.MediaType == mediaTypeSchema1Signed {
		return "", kindErrorf(ErrUnsupported, "image %s uses Docker schema 1, which is not "+
			"supported; re-push it with a current tool", ref)
	}

	mt := p.MediaType
	switch {
	case mt != "" && knownManifestTypes[ct] && ct != mt:
		return "", fmt.Errorf("Content-Type %s disagrees with the manifest's mediaType %s",
			ct, mt)
	case mt != "":
	case knownManifestTypes[ct]:
		mt = ct
	case p.Manifests != nil:
		mt = ocispec.MediaTypeImageIndex
	case p.Config != nil:
		mt = ocispec.MediaTypeImageManifest
	}

	if !knownManifestTypes[mt] {
		return "", kindErrorf(ErrUnsupported, "image %s: manifest media type %q "+
			"(Content-Type %q) is not supported", ref, mt, contentType)
	}
	return mt, nil
}
