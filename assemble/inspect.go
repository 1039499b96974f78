package assemble

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Report is what Inspect found in an archive. Defects is empty when every consumer dls
// targets (containerd's importer, docker load, podman load, RKE2's lookup) should load it.
type Report struct {
	// Path is the archive inspected.
	Path string
	// Compression is "none", "gzip" or "zstd", as detected from the content.
	Compression string
	// Bytes is the size of the tar stream, after decompression, with what follows the tar
	// trailer (a tar writer's padding to whole records).
	Bytes int64
	// Files is the number of regular files read and hashed.
	Files int
	// Images are the images index.json names, in its order, then those only
	// manifest.json lists (archives of docker save before version 25).
	Images []ImageReport
	// Defects are the problems found, in the order they were found.
	Defects []Defect
}

// ImageReport is one image of an archive.
type ImageReport struct {
	// Name is the io.containerd.image.name annotation, or for an image only manifest.json
	// lists, its first RepoTag; empty when the image has neither.
	Name string
	// RefName is the org.opencontainers.image.ref.name annotation.
	RefName string
	// Target is the index.json descriptor (media type, digest, size); zero for an image
	// only manifest.json lists.
	Target ocispec.Descriptor
	// RepoTags are the tags of the manifest.json item describing this image.
	RepoTags []string
	// Platforms are the platform manifests reached, in index order.
	Platforms []PlatformReport
}

// PlatformReport is one platform manifest of an image.
type PlatformReport struct {
	// Platform is "os/architecture[/variant]", from the index or the config; empty when
	// neither says.
	Platform string
	// Manifest is the manifest's digest; empty for an image only manifest.json lists.
	Manifest digest.Digest
	// Config is the config's digest.
	Config digest.Digest
	// Layers is the number of layers.
	Layers int
	// Size is the bytes of config and layers as stored (compressed layers).
	Size int64
	// Complete is true when the config and every layer are in the archive; an index
	// legitimately carries only the manifests of platforms that were not selected.
	Complete bool
}

// Defect is one problem of an archive.
type Defect struct {
	// Where names the file or entry: "index.json manifests[0]", "manifest.json[2]",
	// "blobs/sha256/…".
	Where string
	// Problem says what is wrong and which consumer it breaks.
	Problem string
}

// String renders the defect as "where: problem".
func (d Defect) String() string {
	return d.Where + ": " + d.Problem
}

// OK reports whether no defect was found.
func (r Report) OK() bool {
	return len(r.Defects) == 0
}

// Inspect reads the archive at path, a docker save or dls archive, plain, gzip or zstd
// (detected from the content), in one streaming pass. It hashes every regular file, checks
// every blob against its name, follows every reference (index.json to indexes, manifests,
// configs and layers; manifest.json's Config and Layers paths, and layer counts against
// diff_ids), checks that index.json, manifest.json and repositories name the same images,
// and lists the images with their platforms and sizes.
//
// A compressed stream is read to its end, past the tar trailer, so that gzip's CRC-32 and
// length and zstd's checksum are checked; a stream failing them or cut short is a defect
// of its own, reported before what it broke.
//
// Problems of the archive are Defects in the Report, not errors: an archive cut short is
// reported as such, with what could be read. The error is for failing to read path at all,
// or ctx ending. JSON documents are held in memory, up to 8 MiB each and 20 MiB for
// manifest.json and index.json; layers are streamed.
func Inspect(ctx context.Context, path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("inspect archive: %w", err)
	}
	defer f.Close()

	r, err := inspectStream(ctx, f)
	r.Path = path
	if err != nil {
		return r, fmt.Errorf("inspect archive %s: %w", path, err)
	}

	return r, nil
}

// inspectStream inspects the archive read from r.
func inspectStream(ctx context.Context, r io.Reader) (Report, error) {
	in := newInspection()
	err := in.read(ctx, r)
	if err != nil {
		return *in.report, err
	}

	in.checkBlobNames()
	in.checkLayout()
	in.checkManifestJSON()
	in.matchNames()
	in.checkRepositories()
	return *in.report, nil
}
