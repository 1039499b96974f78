package assemble

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// Limits of Inspect's in-memory reads.
const (
	// maxDocBytes caps a blob kept in memory as a possible JSON document (index,
	// manifest or config); larger blobs are only hashed. It matches maxConfigBytes.
	maxDocBytes = maxConfigBytes
	// maxMetadataBytes caps index.json and manifest.json, as containerd's importer does.
	maxMetadataBytes = 20 << 20
	// maxKeptBytes caps all documents kept, so a hostile archive cannot exhaust memory.
	maxKeptBytes = 512 << 20
	// k3sZstdWindow is the largest zstd window k3s decodes (its decoder memory cap).
	k3sZstdWindow = 1 << 25
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// archiveFile is one regular file of an inspected archive.
type archiveFile struct {
	size int64
	// digest is the content's digest with the algorithm its blobs/ path names, else sha256.
	digest digest.Digest
	// data is the content when it may be a JSON document or is index.json or
	// manifest.json; nil otherwise.
	data []byte
}

// inspection is the state of one Inspect run.
type inspection struct {
	report *Report
	// stream is the decompressed stream, which remembers the decompressor's failure.
	stream *streamReader
	files  map[string]*archiveFile // by cleaned name
	links  map[string]string       // symbolic and hard links: cleaned name to cleaned target
	kept   int64                   // bytes of data held
	// configsOf maps the index of an image of report.Images to the configs of the
	// platforms it reaches, to check manifest.json tags the same content.
	configsOf map[int]map[digest.Digest]bool
	items     []dockerItem
	// manifestRead says manifest.json decoded, so items are all it lists.
	manifestRead bool
}

func newInspection() *inspection {
	return &inspection{
		report:    &Report{Compression: "none"},
		files:     map[string]*archiveFile{},
		links:     map[string]string{},
		configsOf: map[int]map[digest.Digest]bool{},
	}
}

func (in *inspection) defect(where, format string, args ...any) {
	in.report.Defects = append(in.report.Defects,
		Defect{Where: where, Problem: fmt.Sprintf(format, args...)})
}

// read decompresses r as its magic bytes say, reads every tar entry and then the stream to
// its end. A stream that ends early, a bad header or a compressed stream failing its
// checks is a defect; only a failure of ctx or the decompressor's setup is an error.
func (in *inspection) read(ctx context.Context, r io.Reader) error {
	stream, closeStream, err := in.decompress(bufio.NewReaderSize(r, copyBufferSize))
	if err != nil {
		return err
	}
	defer closeStream()

	in.stream = &streamReader{r: stream}
	counter := &countingReader{r: in.stream}
	err = in.readEntries(ctx, tar.NewReader(counter), counter)
	in.report.Bytes = counter.n
	if err != nil {
		return err
	}

	return ctx.Err()
}

// readEntries reads every entry of tr, whose bytes counter counts, then drains counter. Go's
// tar reader takes a stream that stops between entries for a whole archive, so the trailer
// is checked here: without its two zero blocks after the last entry, the archive was cut
// short. A failure the decompressor caused is reported as the compressed stream's, not as
// the entry's it cut.
func (in *inspection) readEntries(ctx context.Context, tr *tar.Reader,
	counter *countingReader) error {
	buf := make([]byte, copyBufferSize)
	var lastEnd int64
	for {
		err := ctx.Err()
		if err != nil {
			return err
		}

		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}

		if err != nil {
			if !in.streamDefect("", counter.n) {
				in.defect("archive", "unreadable after %d bytes: %v", counter.n, err)
			}
			return nil
		}

		err = in.readEntry(ctx, tr, hdr, buf)
		if err != nil {
			if !in.streamDefect(hdr.Name, counter.n) {
				in.defect(hdr.Name, "unreadable: %v", err)
			}
			return nil
		}
		lastEnd = counter.n
	}

	if counter.n-lastEnd < 2*tarBlock {
		in.defect("archive", "ends after %d bytes without the tar trailer; it was cut "+
			"short", counter.n)
	}

	return in.drain(ctx, counter)
}

// drain reads what follows the tar trailer (a tar writer's padding to whole records) to the
// end of the stream. Go's tar reader stops at the trailer, so without this the decompressor
// never reaches the end of its stream, where it checks gzip's CRC-32 and length or zstd's
// checksum, and an archive cut inside those last bytes or corrupt there would pass.
func (in *inspection) drain(ctx context.Context, counter *countingReader) error {
	_, err := io.Copy(io.Discard, &ctxReader{ctx: ctx, r: counter})
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if err != nil && !in.streamDefect("", counter.n) {
		in.defect("archive", "unreadable after the tar trailer, after %d bytes: %v",
			counter.n, err)
	}

	return nil
}

// streamDefect reports the decompressor's failure, if it failed, and says whether it did.
// entry names the tar entry it cut, "" when it failed between entries or after the
// trailer; tarBytes is how much of the tar it gave before failing.
func (in *inspection) streamDefect(entry string, tarBytes int64) bool {
	err := in.stream.err
	if err == nil || in.report.Compression == "none" {
		return false
	}

	c := in.report.Compression
	at := fmt.Sprintf("after %d bytes of tar", tarBytes)
	if entry != "" {
		at += ", inside " + entry
	}

	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		in.defect("archive", "%s stream ends early, %s (%v): the file was cut short, and "+
			"%s -t fails on it", c, at, err, c)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, zstd.ErrCRCMismatch):
		in.defect("archive", "%s stream fails its checksum, %s (%v): the file is corrupt, "+
			"and %s -t fails on it", c, at, err, c)
	default:
		in.defect("archive", "%s stream is corrupt, %s: %v; %s -t fails on it", c, at, err,
			c)
	}

	return true
}

// decompress picks the decompressor from the first bytes of r.
func (in *inspection) decompress(r *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := r.Peek(len(zstdMagic))
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		in.report.Compression = "gzip"
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("start gzip: %w", err)
		}

		return gz, func() { gz.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		in.report.Compression = "zstd"
		in.checkZstdWindow(r)
		dec, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("start zstd: %w", err)
		}

		return dec, dec.Close, nil
	default:
		return r, func() {}, nil
	}
}

// checkZstdWindow reports a first frame k3s cannot decode within its memory cap.
func (in *inspection) checkZstdWindow(r *bufio.Reader) {
	head, _ := r.Peek(zstd.HeaderMaxSize)
	var h zstd.Header
	err := h.Decode(head)
	if err != nil {
		in.defect("archive", "unreadable zstd frame header: %v", err)
		return
	}

	window := h.WindowSize
	if h.SingleSegment {
		window = h.FrameContentSize
	}

	if window > k3sZstdWindow {
		in.defect("archive", "zstd window of %d bytes is over the %d k3s decodes; "+
			"recompress with --long=25 or less", window, k3sZstdWindow)
	}
}

// readEntry records one tar entry, hashing and possibly keeping a regular file.
func (in *inspection) readEntry(ctx context.Context, tr *tar.Reader, hdr *tar.Header,
	buf []byte) error {
	name := in.cleanName(hdr.Name)
	if _, dup := in.files[name]; dup {
		in.defect(hdr.Name, "appears twice; loaders keep one or the other")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return nil
	case tar.TypeSymlink:
		in.links[name] = path.Clean(path.Join(path.Dir(name), hdr.Linkname))
		return nil
	case tar.TypeLink:
		in.links[name] = in.cleanName(hdr.Linkname)
		in.defect(hdr.Name, "is a hard link; containerd's importer ignores hard links")
		return nil
	case tar.TypeReg:
		// A file not read to its end is not recorded: its partial hash would be reported
		// as corrupt content, and the images needing it as complete.
		f, err := in.readFile(ctx, name, hdr.Size, tr, buf)
		if err != nil {
			return err
		}

		in.files[name] = f
		in.report.Files++
		return nil
	default:
		in.defect(hdr.Name, "has tar type %q, which loaders ignore", hdr.Typeflag)
		return nil
	}
}

// cleanName is the name loaders use for an entry, reporting names that escape the archive.
func (in *inspection) cleanName(name string) string {
	clean := path.Clean(name)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		in.defect(name, "points outside the archive")
	}

	return clean
}

// readFile hashes one regular file, keeping small ones that may be JSON documents.
func (in *inspection) readFile(ctx context.Context, name string, size int64, r io.Reader,
	buf []byte) (*archiveFile, error) {
	f := &archiveFile{size: size}
	algorithm := blobAlgorithm(name)
	h := algorithm.Hash()
	limit := int64(maxDocBytes)
	if name == "index.json" || name == "manifest.json" {
		limit = maxMetadataBytes
	}

	var kept bytes.Buffer
	w := io.Writer(h)
	if size <= limit && in.kept+size <= maxKeptBytes {
		w = io.MultiWriter(h, &kept)
	}

	_, err := io.CopyBuffer(w, &ctxReader{ctx: ctx, r: r}, buf)
	f.digest = digest.NewDigest(algorithm, h)
	if err != nil {
		return f, err
	}

	if kept.Len() > 0 && (kept.Bytes()[0] == '{' || kept.Bytes()[0] == '[') {
		f.data = kept.Bytes()
		in.kept += size
	}

	return f, nil
}

// blobAlgorithm is the algorithm a blobs/<algorithm>/<hex> name says, else sha256.
func blobAlgorithm(name string) digest.Algorithm {
	parts := strings.Split(name, "/")
	if len(parts) == 3 && parts[0] == "blobs" && digest.Algorithm(parts[1]).Available() {
		return digest.Algorithm(parts[1])
	}

	return digest.SHA256
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	err := r.ctx.Err()
	if err != nil {
		return 0, err
	}

	return r.r.Read(p)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// streamReader remembers the first failure of the reader under it other than io.EOF, so
// that a tar error it caused can be told from a tar stream that is itself cut or bad.
type streamReader struct {
	r   io.Reader
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}

	return n, err
}
