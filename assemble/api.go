// Package assemble writes docker-save archives from cached content, with no network. The
// archive is an OCI image layout plus Docker's manifest.json and repositories, so that
// containerd's importer (k3s, RKE2, ctr), docker load and podman load all accept it.
//
// What goes where, and why:
//
//   - index.json has one descriptor per image (a cache image is one reference, so one tag),
//     equal to the registry's top-level document (index or manifest), with no platform so a
//     host-only importer never filters it out. io.containerd.image.name holds the fully
//     normalised reference; containerd, k3s and podman ≥ 4.0 name the image from it.
//     org.opencontainers.image.ref.name holds the tag (what docker save and containerd's
//     exporter write, and what OCI tools address a layout by), or the whole reference for an
//     image pinned by digest only, so that a reader falling back to ref.name (ctr without
//     the containerd annotation, podman before 4.0) still gets "name@sha256:…" instead of a
//     bare digest. Podman before 4.0 names a single-tag archive loaded through index.json
//     after its bare tag; docker save's own archives share that fault.
//   - manifest.json has one item per image, for its first selected platform manifest (the
//     preferred one): docker load tags whatever item comes last, so a second item carrying
//     the same tag would make the wrong platform win. Other selected platforms reach
//     containerd through index.json. Images whose item would have the same config and
//     layers (several tags of one image) share one item listing every tag. RepoTags are
//     fully qualified ("docker.io/library/busybox:1.36"), unlike docker save's familiar
//     "busybox:1.36": podman names a familiar name without a registry "localhost/…", while
//     docker load, go-containerregistry and containerd read both forms as one image.
//   - Two cache images the archive would name alike ("app:v1" and "app:v1@sha256:…") are
//     written once when they are the same image, and refused before anything is written
//     when they are not: loaders would keep only one of them.
//   - Blobs travel once each, sorted by digest, after the metadata, and are re-hashed while
//     they are copied: a corrupt cache never yields a silently bad archive.
package assemble

import (
	"log/slog"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// Source is the cached content an archive is written from; *cache.Cache implements it.
// Every method must be safe to call from one goroutine at a time; Write never calls them
// concurrently.
type Source interface {
	// Images lists every image, sorted by Name.
	Images() ([]cache.Image, error)
	// Image returns the image named name, with an error wrapping cache.ErrNotFound when
	// there is none.
	Image(name string) (cache.Image, error)
	// HasBlob reports whether blob d is present, and its size.
	HasBlob(d digest.Digest) (int64, bool)
	// OpenBlob opens blob d for reading; the caller closes the file.
	OpenBlob(d digest.Digest) (*os.File, error)
	// ReadBlob reads blob d into memory, failing when it is larger than limit bytes.
	ReadBlob(d digest.Digest, limit int64) ([]byte, error)
	// Unchanged reports whether f, an open file of blob d, is the file whose bytes were
	// verified when it entered the cache, untouched since; such a blob is copied without
	// hashing it again. Answering false is always safe.
	Unchanged(d digest.Digest, f *os.File) bool
}

// Options select what an archive holds.
type Options struct {
	// Images to write, by cache.Image.Name (fully normalised); empty means every cached
	// image. Order and duplicates do not matter: the archive is the same for any order.
	Images []string
	// MaxSize caps the tar stream of each archive, in bytes before compression (so a
	// compressed file is smaller still); 0 means no cap. WriteFile splits the images into
	// several archives to stay under it, and under podman's 1 MiB limit on manifest.json;
	// Write, having one stream, fails instead. An image never spans two archives.
	MaxSize int64
	// Platforms narrows each image to these platforms (manifest.json describes the first
	// one an image has); empty means every platform the image was fetched for. The index
	// and all its child manifests are written either way.
	Platforms []ocispec.Platform
	// Rehash hashes every blob while copying it, even those Source.Unchanged vouches for:
	// for a cache whose disk is suspect below the file system.
	Rehash bool
	// Logger receives debug records per blob and an info record per archive; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Result describes what was written.
type Result struct {
	// Files are the archives WriteFile wrote, in order; nil for Write.
	Files []string
	// Images is the number of images written.
	Images int
	// Blobs is the number of blobs written: distinct within an archive, but a blob that
	// two archives of a split need counts twice.
	Blobs int
	// Bytes is the size of the tar streams, before any compression.
	Bytes int64
	// Hashed is the number of blobs hashed while copied (see Options.Rehash); the others
	// were copied as the files the cache verified when they entered it.
	Hashed int
	// Cloned is the number of blobs whose bytes the archive shares with the cache's files
	// (XFS with reflink, btrfs): written without copying, and taking no disk space of their
	// own until one of the two files is changed.
	Cloned int
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}

	return o.Logger
}
