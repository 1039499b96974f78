package cache

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Ingest is one resumable blob download under partial/. Bytes written to it are appended to
// the partial file; opening an Ingest for the same blob again, in this run or after a crash,
// continues where the bytes on disk end. An Ingest is not safe for concurrent use.
type Ingest struct {
	c        *Cache
	desc     ocispec.Descriptor
	path     string
	f        *os.File // nil once committed or closed
	digester digest.Digester
	offset   int64
	// flushed is the offset up to which writeback has been started (startWriteback).
	flushed int64
}

// writebackChunk is how many bytes an Ingest lets pile up in the page cache before it asks
// the kernel to start writing them. Left alone, the kernel starts only once 10% of memory
// is dirty or after 30 s, so a layer of hundreds of MB sat in memory until Commit's fsync
// wrote all of it while the download waited; started as the bytes arrive, the writing
// overlaps the download and the fsync finds little left.
const writebackChunk = 8 << 20

// Ingest opens the partial download of desc, re-hashing the bytes already on disk, which
// costs one read of them. It fails with ErrInUse while another Ingest of this process holds
// the same digest and with ErrReadOnly on a read-only cache. The caller must Commit or Close.
func (c *Cache) Ingest(desc ocispec.Descriptor) (*Ingest, error) {
	err := c.checkDescriptor("ingest blob", desc)
	if err != nil {
		return nil, err
	}

	err = c.claim(desc.Digest)
	if err != nil {
		return nil, err
	}

	w, err := c.openIngest(desc)
	if err != nil {
		c.release(desc.Digest)
		return nil, fmt.Errorf("ingest blob %s: %w", desc.Digest, err)
	}

	return w, nil
}

// claim marks d as being ingested by this process.
func (c *Cache) claim(d digest.Digest) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	if c.ingesting[d] {
		return fmt.Errorf("ingest blob %s: %w", d, ErrInUse)
	}

	c.ingesting[d] = true

	return nil
}

// release ends the claim of claim.
func (c *Cache) release(d digest.Digest) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	delete(c.ingesting, d)
}

// writing reports whether an Ingest or PutBlob of this process is writing d under partial/,
// so Prune leaves its file alone.
func (c *Cache) writing(d digest.Digest) bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	return c.ingesting[d] || c.putting[d] > 0
}

// partialPath is the partial file of blob d: one per digest, so a later run finds it.
func (c *Cache) partialPath(d digest.Digest) string {
	return c.path(partialDir, partialName(d))
}

// openIngest opens or creates the partial file and hashes the prefix it holds.
func (c *Cache) openIngest(desc ocispec.Descriptor) (*Ingest, error) {
	path := c.partialPath(desc.Digest)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}

	w := &Ingest{c: c, desc: desc, path: path, f: f, digester: desc.Digest.Algorithm().Digester()}
	w.offset, err = io.Copy(w.digester.Hash(), f)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("hash partial %s: %w", path, err), f.Close())
	}
	w.flushed = w.offset

	if w.offset > desc.Size {
		c.log.Warn("partial download is longer than its blob; starting over",
			"digest", desc.Digest, "have", w.offset, "size", desc.Size)
		err = w.Reset()
		if err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}

	if w.offset > 0 {
		c.log.Debug("resuming partial download", "digest", desc.Digest, "offset", w.offset)
	}

	return w, nil
}

// Offset returns the number of bytes already held, where the next Write continues.
func (w *Ingest) Offset() int64 {
	return w.offset
}

// Write appends p. It writes nothing and fails with ErrCorrupt when p would take the blob past
// its descriptor's size.
func (w *Ingest) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, fmt.Errorf("write blob %s: ingest is closed", w.desc.Digest)
	}

	if w.offset+int64(len(p)) > w.desc.Size {
		return 0, fmt.Errorf("write blob %s: %d bytes at offset %d exceed its size of %d: %w",
			w.desc.Digest, len(p), w.offset, w.desc.Size, ErrCorrupt)
	}

	n, err := w.f.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("write blob %s: %w", w.desc.Digest, err)
	}

	if w.offset-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, w.offset-w.flushed)
		w.flushed = w.offset
	}

	return n, nil
}

// Reset drops the bytes held and starts again from zero, e.g. when a server ignored Range.
func (w *Ingest) Reset() error {
	if w.f == nil {
		return fmt.Errorf("reset blob %s: ingest is closed", w.desc.Digest)
	}

	err := w.f.Truncate(0)
	if err == nil {
		_, err = w.f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("reset blob %s: %w", w.desc.Digest, err)
	}

	w.digester = w.desc.Digest.Algorithm().Digester()
	w.offset, w.flushed = 0, 0

	return nil
}

// Commit syncs the partial file, verifies its size and digest, moves it into blobs/ and
// indexes it; the Ingest is finished afterwards. A short blob is an error that keeps the
// Ingest open for more writes. A digest mismatch removes the partial file and fails with
// ErrCorrupt, so the next attempt starts from zero.
func (w *Ingest) Commit() error {
	d := w.desc.Digest
	if w.f == nil {
		return fmt.Errorf("commit blob %s: ingest is closed", d)
	}

	if w.offset != w.desc.Size {
		return fmt.Errorf("commit blob %s: have %d of its %d bytes; write the rest first",
			d, w.offset, w.desc.Size)
	}

	err := w.f.Sync()
	if err != nil {
		return fmt.Errorf("commit blob %s: sync %s: %w", d, w.path, err)
	}

	// The claim on the digest lasts until the file has left partial/, so no other Ingest of
	// this process can open it under its old name meanwhile.
	defer w.c.release(d)

	err = w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("commit blob %s: close %s: %w", d, w.path, err)
	}

	actual := w.digester.Digest()
	if actual != d {
		err = os.Remove(w.path)

		return errors.Join(fmt.Errorf("commit blob %s: expected digest %s, got %s: %w",
			d, d, actual, ErrCorrupt), err)
	}

	return w.c.commitFile(w.path, w.desc)
}

// Close closes the partial file, keeping it for a later run unless it holds no byte. After
// Commit it does nothing.
func (w *Ingest) Close() error {
	if w.f == nil {
		return nil
	}

	err := w.f.Close()
	w.f = nil
	if err == nil && w.offset == 0 {
		err = os.Remove(w.path)
	}
	w.c.release(w.desc.Digest)
	if err != nil {
		return fmt.Errorf("close partial blob %s: %w", w.desc.Digest, err)
	}

	return nil
}
