package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// copyBufferSize is the chunk blobs are copied and hashed in. Measured on the bench's
// caches (median of 5, page cache warm, against cat's 1.65 s for 2 GiB and 0.46 s for
// 500 MiB): 64 KiB 1.70 s and 0.48 s, 256 KiB 1.47 s and 0.40 s, 1 MiB 2.76 s and 0.38 s.
// Past 256 KiB the buffer no longer stays in the CPU's cache between the read and the write
// of each chunk, which multi-GB layers pay for on every chunk.
const copyBufferSize = 256 << 10

// Entry modes. Files are 0644 like docker save writes them; directories 0755.
const (
	fileMode = 0o644
	dirMode  = 0o755
)

// epoch is every entry's modification time: a fixed time makes archives reproducible.
var epoch = time.Unix(0, 0)

// tarStream writes one archive's entries. Headers carry only name, type, mode, size and
// the epoch time: uid/gid 0 and no user or group names, whoever runs dls. Go's writer picks
// ustar, and PAX for an entry over 8 GiB or a name over 100 bytes; blobHeader adds a PAX
// comment that aligns a blob's body.
//
// archive/tar makes each header, but the stream frames the entries itself (header, body,
// zero padding to a block, two zero blocks at the end: the bytes tar.Writer writes), because
// tar.Writer takes bodies only through Write. Framed here, a body can be cloned from the
// blob file into the archive file (cloneRange) instead of copied.
type tarStream struct {
	counter *countingWriter
	// file is the archive when it is a regular file written as it is (no compression), where
	// bodies may be cloned; nil otherwise, and once a clone has failed: the file system
	// cannot share extents, and every blob would fail alike.
	file *os.File
	// bufs are the chunk buffers of copyVerified: two, so one is read while the other is
	// written.
	bufs [2][]byte
	log  *slog.Logger
	// rehash hashes every blob (Options.Rehash); hashed counts the blobs hashed.
	rehash bool
	hashed int
	// cloned counts the blobs whose bodies share the cache file's extents.
	cloned int
}

func newTarStream(w io.Writer, log *slog.Logger) *tarStream {
	return &tarStream{
		counter: &countingWriter{w: w},
		file:    regularFile(w),
		bufs:    [2][]byte{make([]byte, copyBufferSize), make([]byte, copyBufferSize)},
		log:     log,
	}
}

// regularFile returns w when it is an *os.File open on a regular file, bare or in the
// nopCloser of an uncompressed output, else nil. Pipes and terminals (dls assemble -o - | …)
// are never cloned into.
func regularFile(w io.Writer) *os.File {
	if nc, ok := w.(nopCloser); ok {
		w = nc.Writer
	}

	f, ok := w.(*os.File)
	if !ok {
		return nil
	}

	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}

	return f
}

// writeContent writes c's metadata files, then the blobs directories, then every blob in
// digest order, then the tar trailer, and returns the bytes written. On error the trailer
// is not written, so a stream cut short by a bad blob fails to load instead of loading
// part of the images.
func (s *tarStream) writeContent(ctx context.Context, src Source, c content) (int64, error) {
	for _, f := range c.files {
		err := s.header(f.name, tar.TypeReg, fileMode, int64(len(f.data)))
		if err != nil {
			return s.counter.n, err
		}

		_, err = s.counter.Write(f.data)
		if err == nil {
			err = s.pad(int64(len(f.data)))
		}
		if err != nil {
			return s.counter.n, fmt.Errorf("write %s: %w", f.name, err)
		}
	}

	err := s.writeBlobs(ctx, src, c.blobs)
	if err != nil {
		return s.counter.n, err
	}

	_, err = s.counter.Write(make([]byte, 2*tarBlock))
	if err != nil {
		return s.counter.n, fmt.Errorf("finish archive: %w", err)
	}

	return s.counter.n, nil
}

// writeBlobs writes blobs/, then for each algorithm (blobs are sorted by digest, so by
// algorithm first) its directory and its blobs.
func (s *tarStream) writeBlobs(ctx context.Context, src Source, blobs []ocispec.Descriptor,
) error {
	err := s.header("blobs/", tar.TypeDir, dirMode, 0)
	if err != nil {
		return err
	}

	var algorithm digest.Algorithm
	for _, b := range blobs {
		if b.Digest.Algorithm() != algorithm {
			algorithm = b.Digest.Algorithm()
			err = s.header("blobs/"+algorithm.String()+"/", tar.TypeDir, dirMode, 0)
			if err != nil {
				return err
			}
		}

		err = s.copyBlob(ctx, src, b)
		if err != nil {
			return err
		}
	}

	return nil
}

// header writes the header of one entry; its body, if any, follows, then pad.
func (s *tarStream) header(name string, typeflag byte, mode, size int64) error {
	blocks, err := headerBlocks(entryHeader(name, typeflag, mode, size))
	if err == nil {
		_, err = s.counter.Write(blocks)
	}
	if err != nil {
		return fmt.Errorf("write header of %s: %w", name, err)
	}

	return nil
}

// entryHeader is the header of every entry: only name, type, mode, size and the epoch.
func entryHeader(name string, typeflag byte, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typeflag, Name: name, Mode: mode, Size: size, ModTime: epoch}
}

// headerBlocks returns the blocks archive/tar writes for hdr: one ustar block, or a PAX
// entry and a block when a field does not fit ustar. tar.Writer writes a header as soon as
// it is given, so a writer of its own into a buffer yields exactly those bytes.
func headerBlocks(hdr *tar.Header) ([]byte, error) {
	var buf bytes.Buffer
	err := tar.NewWriter(&buf).WriteHeader(hdr)
	if err != nil {
		return nil, err
	}

	return buf.Bytes(), nil
}

// zeroBlock is the padding source.
var zeroBlock [tarBlock]byte

// pad writes the zeros that fill the last block of a body of size bytes.
func (s *tarStream) pad(size int64) error {
	n := (tarBlock - size%tarBlock) % tarBlock
	_, err := s.counter.Write(zeroBlock[:n])
	return err
}

// copyBlob writes blob desc from src. A blob whose file src vouches for (Source.Unchanged:
// the very file verified when it entered the cache) is copied as it is, its size checked;
// any other is hashed on the way, and bytes that do not hash to desc's digest, or fewer
// bytes than desc's size, fail with cache.ErrCorrupt. So a cache carried across on another
// disk is re-hashed in full, and one assembled where it was fetched is copied at the speed
// of cat instead of hashing every byte a second time.
//
// A vouched-for blob going into a plain archive file may share its extents (cloneOrCopy).
func (s *tarStream) copyBlob(ctx context.Context, src Source, desc ocispec.Descriptor) error {
	f, err := src.OpenBlob(desc.Digest)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}

	name := blobPath(desc.Digest)
	blocks, err := blobHeader(s.counter.n, name, desc.Size)
	if err == nil {
		_, err = s.counter.Write(blocks)
	}
	if err != nil {
		return fmt.Errorf("write header of %s: %w", name, err)
	}

	trusted := !s.rehash && fi.Size() == desc.Size && src.Unchanged(desc.Digest, f)
	if !trusted {
		s.hashed++
	}
	switch {
	case desc.Size >= bodyAlign && fi.Size() == desc.Size && s.file != nil:
		err = s.cloneOrCopy(ctx, f, fi, desc, trusted)
	case trusted:
		err = s.copyPlain(ctx, f, desc)
	default:
		err = s.copyVerified(ctx, f, desc)
	}
	if err == nil {
		err = s.pad(desc.Size)
	}
	if err != nil {
		return fmt.Errorf("copy blob %s: %w", desc.Digest, err)
	}

	s.log.Debug("wrote blob", "digest", desc.Digest, "size", desc.Size, "hashed", !trusted)
	return nil
}

// copyPlain copies desc.Size bytes from r into the current entry, failing with
// cache.ErrCorrupt when r holds fewer, and watching ctx between chunks.
func (s *tarStream) copyPlain(ctx context.Context, r io.Reader, desc ocispec.Descriptor) error {
	return s.copyExactly(ctx, s.counter, r, desc)
}

// copyExactly copies desc.Size bytes from r to w in chunks of the first buffer, failing
// with cache.ErrCorrupt when r holds fewer, and watching ctx between chunks.
func (s *tarStream) copyExactly(ctx context.Context, w io.Writer, r io.Reader,
	desc ocispec.Descriptor) error {
	buf := s.bufs[0]
	var done int64
	for done < desc.Size {
		err := ctx.Err()
		if err != nil {
			return err
		}

		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), desc.Size-done)])
		done += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("it holds %d bytes, %d expected; run dls verify: %w", done,
				desc.Size, cache.ErrCorrupt)
		}
		if err != nil {
			return err
		}

		_, err = w.Write(buf[:n])
		if err != nil {
			return err
		}
	}

	return nil
}

// cloneOrCopy puts f's body, desc.Size bytes at a bodyAlign boundary of the stream, into
// s.file by sharing f's extents, or copies it where the file system cannot (copyPlain, or
// copyVerified when f is not trusted). fi is f's state when opened. The clone goes to the
// file's own offset, which is the stream's unless the stream started inside an existing
// file (dls assemble -o - >> file): then the boundary does not hold, the clone fails, and
// the copy writes the same bytes.
//
// A file the cache cannot vouch for (a cache carried in, or remounted) is cloned too, then
// hashed where it lies: the clone shares its blocks, so its bytes are the ones hashed, as
// long as the file did not change meanwhile, which its size, mtime and ctime tell. So an
// archive shares blocks with a cache carried across, at the cost of one read of each blob
// and no write. On a mismatch the entry is cut back to its header (see copyVerified).
//
// Cloning is not done with copy_file_range, which the os package would make of a copy
// between two files: on file systems that cannot share extents (ext4) it copies page by page
// through a pipe, 18% slower here than the buffered copy.
func (s *tarStream) cloneOrCopy(ctx context.Context, f *os.File, fi os.FileInfo,
	desc ocispec.Descriptor, trusted bool) error {
	off, err := s.file.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}

	if !cloneRange(s.file, off, f, desc.Size) {
		s.log.Debug("cannot share extents with the cache; copying", "archive", s.file.Name())
		s.file = nil
		if trusted {
			return s.copyPlain(ctx, f, desc)
		}
		return s.copyVerified(ctx, f, desc)
	}

	if !trusted {
		err = s.checkClone(ctx, f, fi, desc)
		if err != nil {
			return errors.Join(err, s.file.Truncate(off))
		}
	}

	_, err = s.file.Seek(off+desc.Size, io.SeekStart)
	if err != nil {
		return err
	}

	s.counter.n += desc.Size
	s.cloned++
	return nil
}

// checkClone hashes f, just cloned into the archive, and checks that it hashes to desc's
// digest and is still the file it was when opened (fi), so the clone holds those bytes.
func (s *tarStream) checkClone(ctx context.Context, f *os.File, fi os.FileInfo,
	desc ocispec.Descriptor) error {
	h := desc.Digest.Algorithm().Hash()
	err := s.copyExactly(ctx, h, io.NewSectionReader(f, 0, desc.Size), desc)
	if err != nil {
		return err
	}

	got := digest.NewDigest(desc.Digest.Algorithm(), h)
	if got != desc.Digest {
		return fmt.Errorf("its bytes hash to %s; run dls verify: %w", got, cache.ErrCorrupt)
	}

	after, err := f.Stat()
	if err != nil {
		return err
	}
	if !unchangedSince(fi, after) {
		return fmt.Errorf("its file changed while it was read; assemble again: %w",
			cache.ErrCorrupt)
	}

	return nil
}

// copyVerified copies desc.Size bytes from r into the current entry and checks their
// digest before writing the last chunk. So a corrupt blob leaves its entry short, and every
// tar reader fails on the cut stream, instead of a reader that tolerates a missing trailer
// loading an archive that silently lacks the blobs after it.
//
// Reading and hashing run one chunk ahead of writing (readAhead), so the hash costs little
// more than a plain copy: the archive is written at about the speed of cat.
func (s *tarStream) copyVerified(ctx context.Context, r io.Reader, desc ocispec.Descriptor,
) error {
	h := desc.Digest.Algorithm().Hash()
	chunks := make(chan chunk)
	free := make(chan []byte, len(s.bufs))
	for _, b := range s.bufs {
		free <- b
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		readAhead(ctx, r, h, desc.Size, free, chunks, stop)
	}()
	defer func() {
		close(stop)
		<-finished
	}()

	for c := range chunks {
		if c.err != nil {
			return c.err
		}

		if c.last {
			got := digest.NewDigest(desc.Digest.Algorithm(), h)
			if got != desc.Digest {
				return fmt.Errorf("its bytes hash to %s; run dls verify: %w", got,
					cache.ErrCorrupt)
			}
		}

		_, err := s.counter.Write(c.data)
		if err != nil || c.last {
			return err
		}
		free <- c.data[:cap(c.data)]
	}
	return nil
}

// chunk is a piece of a blob, read and hashed, waiting to be written.
type chunk struct {
	data []byte
	// last is set on the final piece: the hash then covers the whole blob.
	last bool
	err  error
}

// readAhead reads size bytes of r into buffers taken from free, hashes each piece into h
// and sends it on chunks, then closes chunks. It stops early when ctx ends, when r is short
// (an error wrapping cache.ErrCorrupt) or when stop closes. h may be read once the last
// chunk is received.
func readAhead(ctx context.Context, r io.Reader, h hash.Hash, size int64, free chan []byte,
	chunks chan<- chunk, stop <-chan struct{}) {
	defer close(chunks)

	remaining := size
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-stop:
			return
		}

		c := chunk{data: buf[:min(int64(len(buf)), remaining)]}
		n, err := io.ReadFull(r, c.data)
		switch {
		case ctx.Err() != nil:
			c.err = ctx.Err()
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			c.err = fmt.Errorf("it holds %d bytes, %d expected; run dls verify: %w",
				size-remaining+int64(n), size, cache.ErrCorrupt)
		case err != nil:
			c.err = err
		default:
			h.Write(c.data)
			remaining -= int64(n)
			c.last = remaining == 0
		}

		select {
		case chunks <- c:
		case <-stop:
			return
		}
		if c.err != nil || c.last {
			return
		}
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
