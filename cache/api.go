// Package cache is dls's on-disk content store: verified blobs addressed by digest, partial
// downloads that survive a killed process, and a bbolt index of images and blobs. It knows
// nothing of the network or of archive formats.
//
// The directory is also an OCI image layout (oci-layout, index.json, blobs/sha256/<hex>), so
// OCI tools can read it as it is. Existence of a file under blobs/ means its size and digest
// were verified; nothing else ever lands there.
package cache

import (
	"errors"
	"log/slog"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error kinds callers test with errors.Is.
var (
	// ErrNotFound: the blob or image is not in the cache.
	ErrNotFound = errors.New("not found in cache")
	// ErrCorrupt: bytes do not match the expected size or digest.
	ErrCorrupt = errors.New("corrupt content")
	// ErrLocked: another process holds the cache for writing.
	ErrLocked = errors.New("cache is locked by another process")
	// ErrReadOnly: a write was attempted on a cache opened read-only.
	ErrReadOnly = errors.New("cache is open read-only")
	// ErrVersion: the cache was written by a newer, incompatible dls.
	ErrVersion = errors.New("unsupported cache format version")
	// ErrInUse: another Ingest of this process is writing the same blob right now.
	ErrInUse = errors.New("blob is being written by another ingest")
	// ErrIndexDamaged: index.db cannot be read. The blobs are separate files it does not
	// affect; RebuildIndex replaces the index from them.
	ErrIndexDamaged = errors.New("cache index is damaged")
)

// Image is one cached image, named by the reference the user listed.
//
// Target is the top-level document the registry returned for the reference (an index or a
// manifest), stored byte-exact. Manifests are the platform manifests selected for the
// requested platforms (each with its Platform set), in the order the platforms were
// requested; for a single-manifest image it holds Target itself.
type Image struct {
	// Name is the fully normalised reference, e.g. "docker.io/library/busybox:1.36" or
	// "docker.io/library/busybox@sha256:…" when the image was listed by digest only.
	Name      string               `json:"name"`
	Target    ocispec.Descriptor   `json:"target"`
	Manifests []ocispec.Descriptor `json:"manifests"`
	// Children lists every manifest an index names (attestations included); their blobs are
	// kept so the index stays complete. Empty for a single-manifest image.
	Children []ocispec.Descriptor `json:"children,omitempty"`
	// Blobs is every blob the image needs in the cache for assembly: Target, Children,
	// the selected manifests, their configs and layers. Sorted by digest, no duplicates.
	Blobs []ocispec.Descriptor `json:"blobs"`
}

// Options control how a cache is opened.
type Options struct {
	// ReadOnly opens without the writer lock and refuses every write; it works on read-only
	// media. Readers are never blocked by a writer for longer than one bbolt transaction.
	ReadOnly bool
	// MustExist makes a writable open fail with ErrNotFound, creating nothing, when dir
	// holds no index.db: commands that only maintain a cache must not turn a mistyped
	// --cache (an empty directory, another tool's storage) into a new one. A read-only open
	// always behaves so.
	MustExist bool
	// Logger receives debug and warn records; nil means slog.Default().
	Logger *slog.Logger
}
