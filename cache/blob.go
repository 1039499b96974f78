package cache

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// blobMode is the mode of files under blobs/: they are never modified once there.
const blobMode = 0o444

// BlobInfo names one blob and its size in bytes.
type BlobInfo struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// blobPath is where the blob d lives. d must have passed Validate, which keeps it inside.
func (c *Cache) blobPath(d digest.Digest) string {
	return c.path(blobsDir, d.Algorithm().String(), d.Encoded())
}

// HasBlob reports whether d is present in blobs/, hence verified, and its size on disk.
func (c *Cache) HasBlob(d digest.Digest) (size int64, ok bool) {
	if d.Validate() != nil {
		return 0, false
	}

	fi, err := os.Stat(c.blobPath(d))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}

	return fi.Size(), true
}

// Has reports whether the blob desc describes is present with desc's size and, in a
// writable cache, with the right bytes. A file of another size (truncated on the way across,
// cut by a full disk) counts as absent, so the next fetch replaces it instead of trusting
// it. A writable cache also hashes, once, each file it cannot vouch for (see Unchanged: a
// cache carried from another machine, an older dls's cache, a file touched since): one that
// verifies is recorded as verified, one that does not counts as absent and is replaced. A
// read-only cache (ls, status) checks sizes only; assemble hashes what it cannot vouch for.
func (c *Cache) Has(desc ocispec.Descriptor) bool {
	size, ok := c.HasBlob(desc.Digest)
	if !ok || size != desc.Size {
		return false
	}
	if c.readOnly {
		return true
	}

	err := c.vouch(desc)
	if err != nil {
		c.log.Warn("a cached blob fails verification; it will be fetched again",
			"digest", desc.Digest, "err", err)
		return false
	}
	return true
}

// vouch checks the file of blob desc unless its stamp says it is the file verified when it
// entered, and records a stamp for it when its bytes verify.
func (c *Cache) vouch(desc ocispec.Descriptor) error {
	f, err := c.OpenBlob(desc.Digest)
	if err != nil {
		return err
	}
	defer f.Close()

	if c.Unchanged(desc.Digest, f) {
		return nil
	}

	verifier := desc.Digest.Verifier()
	n, err := io.Copy(verifier, f)
	if err != nil {
		return fmt.Errorf("hash blob %s: %w", desc.Digest, err)
	}
	if n != desc.Size || !verifier.Verified() {
		return fmt.Errorf("blob %s: its %d bytes do not hash to its digest: %w", desc.Digest,
			n, ErrCorrupt)
	}

	c.log.Debug("verified a cached blob the cache could not vouch for", "digest", desc.Digest)
	return c.indexBlob(BlobInfo{Digest: desc.Digest, Size: desc.Size},
		filepath.Dir(c.blobPath(desc.Digest)))
}

// OpenBlob opens the blob d for reading; the caller closes the file. It fails with
// ErrNotFound when the blob is absent.
func (c *Cache) OpenBlob(d digest.Digest) (*os.File, error) {
	err := d.Validate()
	if err != nil {
		return nil, fmt.Errorf("open blob %q: %w", d, err)
	}

	f, err := os.Open(c.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}

	return f, nil
}

// ReadBlob reads the whole blob d into memory, refusing blobs larger than limit bytes, and
// checks its digest (the reads it serves are small: manifests, indexes, configs). It fails
// with ErrNotFound when the blob is absent and ErrCorrupt when its bytes do not match d.
func (c *Cache) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	if limit < 0 || limit == math.MaxInt64 {
		return nil, fmt.Errorf("read blob %s: invalid limit %d", d, limit)
	}

	f, err := c.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}

	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read blob %s: it is larger than the limit of %d bytes", d, limit)
	}

	actual := d.Algorithm().FromBytes(data)
	if actual != d {
		return nil, fmt.Errorf("read blob %s: its %d bytes hash to %s; "+
			"run dls verify --repair: %w", d, len(data), actual, ErrCorrupt)
	}

	return data, nil
}

// PutBlob verifies data against desc (size and digest, ErrCorrupt on mismatch), then stores
// and indexes it. Storing a blob already present does nothing.
func (c *Cache) PutBlob(desc ocispec.Descriptor, data []byte) error {
	err := c.checkDescriptor("put blob", desc)
	if err != nil {
		return err
	}

	if int64(len(data)) != desc.Size {
		return fmt.Errorf("put blob %s: got %d bytes, expected %d: %w",
			desc.Digest, len(data), desc.Size, ErrCorrupt)
	}

	actual := desc.Digest.Algorithm().FromBytes(data)
	if actual != desc.Digest {
		return fmt.Errorf("put blob %s: content hashes to %s: %w", desc.Digest, actual, ErrCorrupt)
	}

	if c.Has(desc) {
		return nil
	}

	c.startPut(desc.Digest)
	defer c.endPut(desc.Digest)

	tmp, err := c.writeTemp(desc.Digest, data)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", desc.Digest, err)
	}

	return c.commitFile(tmp, desc)
}

// startPut marks d as being written by PutBlob, so Prune leaves its temporary file alone.
func (c *Cache) startPut(d digest.Digest) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.putting[d]++
}

// endPut ends the mark of startPut.
func (c *Cache) endPut(d digest.Digest) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.putting[d]--
	if c.putting[d] == 0 {
		delete(c.putting, d)
	}
}

// checkDescriptor refuses writes to a read-only cache and descriptors that cannot name a blob.
func (c *Cache) checkDescriptor(action string, desc ocispec.Descriptor) error {
	err := c.checkWritable(action + " " + desc.Digest.String())
	if err != nil {
		return err
	}

	err = desc.Digest.Validate()
	if err != nil {
		return fmt.Errorf("%s %q: %w", action, desc.Digest, err)
	}

	if desc.Size < 0 {
		return fmt.Errorf("%s %s: negative size %d", action, desc.Digest, desc.Size)
	}

	return nil
}

// writeTemp writes data, the blob d, to a new synced file under partial/ and returns its path.
func (c *Cache) writeTemp(d digest.Digest, data []byte) (string, error) {
	f, err := os.CreateTemp(c.path(partialDir), putPrefix+partialName(d)+"-*")
	if err != nil {
		return "", err
	}

	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}

	err = errors.Join(err, f.Close())
	if err != nil {
		return "", errors.Join(err, os.Remove(f.Name()))
	}

	return f.Name(), nil
}

// commitFile moves a verified, synced file into blobs/ and indexes it. The index is written
// after the rename and after the directory holding it is synced, so a crash leaves at worst
// an unindexed blob, which Open re-indexes.
func (c *Cache) commitFile(tmp string, desc ocispec.Descriptor) error {
	err := os.Chmod(tmp, blobMode)
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", desc.Digest, errors.Join(err, os.Remove(tmp)))
	}

	dst := c.blobPath(desc.Digest)
	err = c.renameBlob(tmp, dst)
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", desc.Digest, errors.Join(err, os.Remove(tmp)))
	}

	return c.indexBlob(BlobInfo{Digest: desc.Digest, Size: desc.Size}, filepath.Dir(dst))
}

// renameBlob renames tmp to dst, creating dst's directory, blobs/<alg>, when it is missing:
// Open creates only blobs/sha256, and trying the rename first spares every commit a stat. A
// directory it creates is synced into its parents, so the blob's path survives a crash.
func (c *Cache) renameBlob(tmp, dst string) error {
	err := rename(tmp, dst)
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}

	dir := filepath.Dir(dst)
	err = os.MkdirAll(dir, 0o755)
	if err != nil {
		return err
	}

	for _, parent := range []string{c.path(blobsDir), c.dir} {
		err = syncDir(parent)
		if err != nil {
			return err
		}
	}

	return rename(tmp, dst)
}

// rename is os.Rename without the lstat of newpath it makes first to refuse replacing a
// directory: rename(2) refuses that too (EISDIR), and the lstat is a system call per commit.
func rename(oldpath, newpath string) error {
	err := unix.Rename(oldpath, newpath)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}

	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}

	err = f.Sync()

	return errors.Join(err, f.Close())
}

// listBlobs returns every well-named blob file under blobs/, sorted by digest. Files whose
// names are not digests are skipped with a warning: dls never writes them.
func (c *Cache) listBlobs() ([]BlobInfo, error) {
	algs, err := os.ReadDir(c.path(blobsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list blobs in %s: %w", c.dir, err)
	}

	var out []BlobInfo
	for _, alg := range algs {
		found, err := c.listAlgorithm(alg.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}

	slices.SortFunc(out, compareBlobs)

	return out, nil
}

// listAlgorithm lists the blob files of one blobs/<alg> directory.
func (c *Cache) listAlgorithm(alg string) ([]BlobInfo, error) {
	dir := c.path(blobsDir, alg)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list blobs in %s: %w", dir, err)
	}

	var out []BlobInfo
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), e.Name())
		info, err := e.Info()
		if err != nil || d.Validate() != nil || !info.Mode().IsRegular() {
			c.log.Warn("ignoring a file that is not a blob", "path", filepath.Join(dir, e.Name()))
			continue
		}
		out = append(out, BlobInfo{Digest: d, Size: info.Size()})
	}

	return out, nil
}

// compareBlobs orders blobs by digest, the order of every blob list the cache returns.
func compareBlobs(a, b BlobInfo) int {
	return strings.Compare(string(a.Digest), string(b.Digest))
}
