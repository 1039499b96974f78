// Package registry speaks the OCI distribution protocol: references, endpoints and mirrors,
// auth challenges and tokens, manifests, blob GETs with Range, and retries. It knows nothing
// of the cache or of archives.
//
// A Client is built once from Options (registries.yaml mirrors and configs, retry budget,
// logger) and is safe for concurrent use. Resolve turns a reference into the registry's
// manifest bytes, FetchManifest fetches an index's child by digest, TagDigest asks what a tag
// points to without downloading it, and FetchBlob streams a blob into a BlobSink,
// continuing from whatever the sink already holds (from the registry, or, for a foreign
// layer the registry lacks, from the urls its descriptor lists).
//
// Names recorded by callers stay the original, normalised names (docker.io/library/x:1):
// mirrors and rewrite rules only change where and under which path the bytes are fetched.
package registry

import (
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is a manifest or index exactly as the registry sent it.
type Manifest struct {
	// Descriptor has the MediaType, the Digest of Bytes (computed locally) and the Size.
	Descriptor ocispec.Descriptor
	// Bytes are the registry's bytes, never re-marshalled, so their digest is stable.
	Bytes []byte
	// TagDigest is set only by Resolve for a name:tag@digest reference, and only when the
	// tag could be looked up: it is the digest the tag points to now. It equals
	// Descriptor.Digest when the tag points to these bytes; any other value means the tag
	// moved or the digest belongs to another tag (the pinned digest was used all the same).
	// Empty means not checked.
	TagDigest digest.Digest
}

// TagMoved reports a name:tag@digest whose tag was found pointing elsewhere than the
// pinned digest, so a summary can name it.
func (m Manifest) TagMoved() bool {
	return m.TagDigest != "" && m.TagDigest != m.Descriptor.Digest
}

// BlobSink receives a blob's bytes. Offset says how many it already holds, so the fetch
// continues with Range: bytes=Offset-(Size-1). Reset drops them all, for a server that
// ignores Range or answers a Content-Range that does not start at Offset.
//
// FetchBlob calls the sink from one goroutine at a time and never writes past the
// descriptor's size; verifying the digest is the sink's job, at commit.
type BlobSink interface {
	io.Writer
	Offset() int64
	Reset() error
}

// BlobStats describes one FetchBlob call.
type BlobStats struct {
	Downloaded int64         // body bytes received and written to the sink this call
	Resumed    int64         // bytes the sink held at the start and kept (0 after a Reset)
	Retries    int           // requests repeated: retryable statuses, cut or stalled bodies
	Waited     time.Duration // time spent in backoff before those retries
}
