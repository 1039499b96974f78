// Package assemble writes docker-save archives from cached content, with no network. The
// archive is an OCI image layout plus Docker's manifest.json and repositories, so that
// containerd's importer (k3s, RKE2, ctr), docker load and podman load all accept it.
//
// Contract used by the rest of dls (to be implemented in this package):
//
//	type Options struct {
//		// Images to write, by cache.Image.Name (fully normalised); empty means every
//		// cached image.
//		Images []string
//		Logger *slog.Logger
//	}
//
//	// Write checks every image is complete in c before writing a byte (failing with an
//	// error naming each incomplete image and how many blobs it lacks), then streams the
//	// archive to w. Deterministic: same images and cache content, same bytes.
//	func Write(ctx context.Context, c *cache.Cache, w io.Writer, opts Options) (Result, error)
//
//	// WriteFile writes the archive to path through a temporary file in the same directory,
//	// fsynced and renamed; on any error no file is left at path or at the temporary name.
//	// Compression follows the name: .tar, .tar.gz/.tgz, .tar.zst/.tzst (zstd window ≤ 32 MiB).
//	func WriteFile(ctx context.Context, c *cache.Cache, path string, opts Options) (Result, error)
//
//	type Result struct {
//		Images int   // images written
//		Blobs  int   // distinct blobs written
//		Bytes  int64 // archive bytes before compression
//	}
package assemble
