package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
)

// maxListLine caps one line of an image list; real references are far shorter.
const maxListLine = 64 << 10

// ParseReference parses and normalises one image reference the way containerd and Docker
// do: "busybox" becomes "docker.io/library/busybox:latest", "index.docker.io/x" becomes
// "docker.io/library/x:latest". name:tag, name@digest and name:tag@digest are accepted;
// a bare name gets ":latest". The result's String() is the name recorded everywhere else.
func ParseReference(s string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", s, err)
	}

	return reference.TagNameOnly(named), nil
}

// ParseList reads an image list: one reference per line, blank lines and "#" comments
// ignored, also a "# comment" after a reference. source names the input in errors, which
// read "source:line: …". Every bad line is reported (errors.Join), not only the first, and
// the valid references are still returned. Duplicates (after normalisation) are dropped,
// keeping first-seen order. Reading standard input is the caller's business: it passes
// os.Stdin with source "<stdin>".
func ParseList(r io.Reader, source string) ([]reference.Named, error) {
	var (
		refs []reference.Named
		errs []error
		seen = map[string]bool{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}

		ref, err := ParseReference(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", source, line, err))
			continue
		}

		if !seen[ref.String()] {
			seen[ref.String()] = true
			refs = append(refs, ref)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read image list %s: %w", source, err))
	}
	return refs, errors.Join(errs...)
}
