package testimage

import (
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/opencontainers/go-digest"
)

// Push uploads the layers, the config and the manifest to repo, in the order a registry
// requires (what a manifest names must exist first), and tags the manifest with tag unless
// tag is empty. It returns the manifest digest.
func (img Image) Push(t testing.TB, r *registrytest.Registry, repo, tag string) digest.Digest {
	t.Helper()

	for _, b := range img.Layers {
		r.PushBlob(t, repo, b.Data)
	}
	r.PushBlob(t, repo, img.Config.Data)
	return pushManifest(t, r, repo, tag, img.Manifest)
}

// Push uploads every image and attestation of the index to repo by digest, then the index
// itself, tagged with tag unless tag is empty. It returns the index digest.
func (idx Index) Push(t testing.TB, r *registrytest.Registry, repo, tag string) digest.Digest {
	t.Helper()

	for _, img := range idx.Images {
		img.Push(t, r, repo, "")
	}
	for _, att := range idx.Attestations {
		r.PushBlob(t, repo, att.Statement.Data)
		r.PushBlob(t, repo, att.Config.Data)
		pushManifest(t, r, repo, "", att.Manifest)
	}
	return pushManifest(t, r, repo, tag, idx.Index)
}

func pushManifest(t testing.TB, r *registrytest.Registry, repo, tag string,
	b Blob) digest.Digest {
	t.Helper()

	ref := tag
	if ref == "" {
		ref = b.Digest().String()
	}
	return r.PushManifest(t, repo, ref, b.Descriptor.MediaType, b.Data)
}
