package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// blobRefs indexes which images need which blobs.
type blobRefs struct {
	// names maps a digest to the names of the images needing it, sorted because the images
	// are visited in Name order.
	names map[digest.Digest][]string
	// sizes maps a digest to the size the first image naming it gives.
	sizes map[digest.Digest]int64
}

// newBlobRefs indexes the Blobs of images, which must be sorted by Name.
func newBlobRefs(images []Image) blobRefs {
	r := blobRefs{names: map[digest.Digest][]string{}, sizes: map[digest.Digest]int64{}}
	for _, img := range images {
		for _, desc := range img.Blobs {
			if _, ok := r.sizes[desc.Digest]; !ok {
				r.sizes[desc.Digest] = desc.Size
			}
			r.names[desc.Digest] = append(r.names[desc.Digest], img.Name)
		}
	}

	return r
}

// partialFile is one file under partial/.
type partialFile struct {
	name   string
	digest digest.Digest // "" when the name names no digest
	put    bool          // a PutBlob temporary file rather than a resumable download
	size   int64
}

// putPrefix starts the names of PutBlob's temporary files under partial/.
const putPrefix = "put-"

// partialName is the name under partial/ of the download of d. PutBlob's temporary files for
// d are named putPrefix, then it, then a random suffix.
func partialName(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// parsePartialName recovers the digest a partial file belongs to, or "".
func parsePartialName(name string) (d digest.Digest, put bool) {
	rest, put := strings.CutPrefix(name, putPrefix)
	if put {
		// PutBlob temporaries are named put-<alg>-<hex>-<random>.
		i := strings.LastIndexByte(rest, '-')
		if i < 0 {
			return "", true
		}
		rest = rest[:i]
	}

	alg, encoded, ok := strings.Cut(rest, "-")
	d = digest.NewDigestFromEncoded(digest.Algorithm(alg), encoded)
	if !ok || d.Validate() != nil {
		return "", put
	}

	return d, put
}

// listPartials returns the files under partial/, in name order.
func (c *Cache) listPartials() ([]partialFile, error) {
	entries, err := os.ReadDir(c.path(partialDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list partial downloads in %s: %w", c.dir, err)
	}

	var out []partialFile
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}

		d, put := parsePartialName(e.Name())
		out = append(out, partialFile{name: e.Name(), digest: d, put: put, size: info.Size()})
	}

	return out, nil
}

// stalePartials returns the partial files nothing will continue: not being written by this
// process, and either unnamed, a PutBlob leftover, already complete in blobs/ or needed by
// no image. Another process fetching into a cache opened read-only here may still be writing
// a partial of a blob whose image it has not recorded yet; callers that remove stale
// partials hold the writer lock, which rules that out.
func (c *Cache) stalePartials(refs blobRefs) ([]partialFile, error) {
	partials, err := c.listPartials()
	if err != nil {
		return nil, err
	}

	return c.staleOf(partials, refs), nil
}

// staleOf returns the stale files of partials, as stalePartials defines them.
func (c *Cache) staleOf(partials []partialFile, refs blobRefs) []partialFile {
	var out []partialFile
	for _, p := range partials {
		if p.digest != "" && c.writing(p.digest) {
			continue
		}

		_, complete := c.HasBlob(p.digest)
		_, needed := refs.names[p.digest]
		if p.digest == "" || p.put || complete || !needed {
			out = append(out, p)
		}
	}

	return out
}

// ctxReader stops a long read (hashing or copying a large blob) once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from the underlying reader unless the context is done.
func (r ctxReader) Read(p []byte) (int, error) {
	err := r.ctx.Err()
	if err != nil {
		return 0, err
	}

	return r.r.Read(p)
}

// hashFile returns the digest, by alg, and the size of the file at path.
func hashFile(ctx context.Context, path string,
	alg digest.Algorithm) (digest.Digest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()

	digester := alg.Digester()
	n, err := io.Copy(digester.Hash(), ctxReader{ctx: ctx, r: f})
	if err != nil {
		return "", n, err
	}

	return digester.Digest(), n, nil
}

// sortDefects orders defects by digest.
func sortDefects(defects []Defect) {
	slices.SortFunc(defects, func(a, b Defect) int {
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
}

// sortedDigests returns a sorted copy of digests without duplicates.
func sortedDigests(digests []digest.Digest) []digest.Digest {
	out := slices.Clone(digests)
	slices.Sort(out)

	return slices.Compact(out)
}
