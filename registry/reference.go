package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
)

// ParseReference parses and normalises one image reference the way containerd and Docker
// do: "busybox" becomes "docker.io/library/busybox:latest", "index.docker.io/x" becomes
// "docker.io/library/x:latest". name:tag, name@digest and name:tag@digest are accepted;
// a bare name gets ":latest". The result's String() is the name recorded everywhere else.
// Errors quote at most the first 80 bytes of s.
func ParseReference(s string) (reference.Named, error) {
	if s == "" {
		return nil, errors.New("parse reference \"\": empty image reference")
	}

	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("parse reference %s: %w", quoteShort(s), err)
	}

	return reference.TagNameOnly(named), nil
}

// ParseList reads an image list: one reference per line, blank lines and "#" comments
// ignored, also a "# comment" after a reference. A UTF-8 byte order mark at the start is
// skipped and lines may end in "\r\n". source names the input in errors, which read
// "source:line: …": a reference part over 4096 bytes, bytes that are not text (quoted,
// cut to 80 bytes) and unparsable references. Bad lines are reported together
// (errors.Join), not only the first, up to 20 of them and then one error counting the
// rest, and the valid references are still returned. A file that is not text at all (a
// NUL byte anywhere, a UTF-16 byte order mark) fails alone with one error and no
// references, as soon as that is seen: a binary passed by mistake is one mistake, not
// thousands of bad lines. Duplicates (after normalisation) are dropped, keeping
// first-seen order. Reading standard input is the caller's business: it passes os.Stdin
// with source "<stdin>".
func ParseList(r io.Reader, source string) ([]reference.Named, error) {
	var (
		refs    []reference.Named
		errs    []error
		invalid int   // bad lines, also those past maxListErrors
		readErr error // why reading stopped early, reported last
		seen    = map[string]bool{}
	)
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := readListLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read image list %s after line %d: %w", source, n-1, err)
			break
		}

		if err := checkTextFile(line, n == 1, source); err != nil {
			return nil, err
		}

		ref, err := parseListLine(line, n == 1)
		if err != nil {
			invalid++
			if invalid <= maxListErrors {
				errs = append(errs, fmt.Errorf("%s:%d: %w", source, n, err))
			}
			continue
		}
		if ref != nil && !seen[ref.String()] {
			seen[ref.String()] = true
			refs = append(refs, ref)
		}
	}

	return refs, errors.Join(append(errs, moreInvalid(source, invalid), readErr)...)
}

// moreInvalid counts the bad lines of source past the first maxListErrors, which ParseList
// does not report one by one; nil when there are none.
func moreInvalid(source string, invalid int) error {
	more := invalid - maxListErrors
	switch {
	case more <= 0:
		return nil
	case more == 1:
		return fmt.Errorf("%s: … and 1 more invalid line", source)
	}

	return fmt.Errorf("%s: … and %d more invalid lines", source, more)
}

// parseListLine returns the reference on one line of an image list, or nil for a blank
// or comment line. first says it is the file's first line, which may start with a BOM.
func parseListLine(line listLine, first bool) (reference.Named, error) {
	if first && bytes.HasPrefix(line.text, utf8BOM) {
		line.text, line.size = line.text[len(utf8BOM):], line.size-len(utf8BOM)
	}

	// The limit applies to what precedes a comment: a long comment is harmless.
	refPart, _, commented := bytes.Cut(line.text, []byte("#"))
	if len(refPart) > maxListLine || (line.size > maxListLine && !commented) {
		return nil, fmt.Errorf("line is %d bytes long, over the %d-byte limit of a reference",
			line.size, maxListLine)
	}
	if err := checkText(refPart); err != nil {
		return nil, err
	}

	text := strings.TrimSpace(string(refPart))
	if text == "" {
		return nil, nil
	}
	return ParseReference(text)
}
