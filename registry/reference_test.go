package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestParseReferenceNormalises(t *testing.T) {
	const dgst = "sha256:2d8ee3df89f24f1bd9e5d8f6bb96c0f98ba4e2a4e9e8a6bd5d1dd9dbb18c31a8"
	tests := []struct {
		name, in            string
		want, repo, apiHost string
	}{
		{"bare name gets library and latest", "busybox",
			"docker.io/library/busybox:latest", "library/busybox", "registry-1.docker.io"},
		{"library prefix", "library/busybox",
			"docker.io/library/busybox:latest", "library/busybox", "registry-1.docker.io"},
		{"docker.io domain", "docker.io/busybox:1.36",
			"docker.io/library/busybox:1.36", "library/busybox", "registry-1.docker.io"},
		{"legacy index domain", "index.docker.io/library/busybox",
			"docker.io/library/busybox:latest", "library/busybox", "registry-1.docker.io"},
		{"hub organisation", "rancher/mirrored-pause:3.6",
			"docker.io/rancher/mirrored-pause:3.6", "rancher/mirrored-pause",
			"registry-1.docker.io"},
		{"host with port", "localhost:5000/a/b:1",
			"localhost:5000/a/b:1", "a/b", "localhost:5000"},
		{"other registry", "registry.k8s.io/pause:3.9",
			"registry.k8s.io/pause:3.9", "pause", "registry.k8s.io"},
		{"digest only", "busybox@" + dgst,
			"docker.io/library/busybox@" + dgst, "library/busybox", "registry-1.docker.io"},
		{"tag and digest", "quay.io/x/y:1@" + dgst,
			"quay.io/x/y:1@" + dgst, "x/y", "quay.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := ParseReference(tt.in)
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.in, err)
			}
			if ref.String() != tt.want {
				t.Errorf("String() = %q, want %q", ref.String(), tt.want)
			}
			if got := reference.Path(ref); got != tt.repo {
				t.Errorf("Path = %q, want %q", got, tt.repo)
			}
			eps := endpointsFor(nil, ref)
			if got := eps[len(eps)-1].base.Host; got != tt.apiHost {
				t.Errorf("default endpoint host = %q, want %q", got, tt.apiHost)
			}
		})
	}
}

func TestParseReferenceRejects(t *testing.T) {
	for _, in := range []string{"", "library/Busybox", "a b", "x@sha256:short", "-bad"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseReference(in)
			if err == nil || !strings.Contains(err.Error(), "parse reference") {
				t.Fatalf("ParseReference(%q) error = %v, want a parse error", in, err)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	const list = `# k3s images
docker.io/rancher/mirrored-pause:3.6
busybox   # a comment after a reference

Busybox:1
rancher/mirrored-pause:3.6
docker.io/library/busybox:latest
bad ref here
registry.k8s.io/pause:3.9
`
	refs, err := ParseList(strings.NewReader(list), "list.txt")

	var got []string
	for _, r := range refs {
		got = append(got, r.String())
	}
	want := []string{
		"docker.io/rancher/mirrored-pause:3.6",
		"docker.io/library/busybox:latest",
		"registry.k8s.io/pause:3.9",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("refs = %q, want %q", got, want)
	}

	if err == nil {
		t.Fatal("ParseList error = nil, want errors for lines 5 and 8")
	}
	msg := err.Error()
	for _, prefix := range []string{"list.txt:5: parse reference \"Busybox:1\"",
		"list.txt:8: parse reference \"bad ref here\""} {
		if !strings.Contains(msg, prefix) {
			t.Errorf("error %q does not contain %q", msg, prefix)
		}
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 2 {
		t.Errorf("error joins %d errors, want 2", n)
	}
}

func TestParseListStdinName(t *testing.T) {
	_, err := ParseList(strings.NewReader("ok:1\nNOT OK\n"), "<stdin>")
	if err == nil || !strings.HasPrefix(err.Error(), "<stdin>:2: ") {
		t.Fatalf("error = %v, want one starting with <stdin>:2:", err)
	}
	var target interface{ Unwrap() []error }
	if !errors.As(err, &target) {
		t.Fatalf("error %T is not a joined error", err)
	}
}

func TestParseReferenceEmpty(t *testing.T) {
	_, err := ParseReference("")
	if err == nil || err.Error() != `parse reference "": empty image reference` {
		t.Fatalf("error = %v, want %q", err, `parse reference "": empty image reference`)
	}
}

func TestParseListLines(t *testing.T) {
	long := strings.Repeat("a", 70_000)
	const notText = "list.txt is not a text image list (it holds NUL bytes); give a file " +
		"with one image reference per line"
	tests := []struct {
		name     string
		in       string
		wantRefs []string
		wantErrs []string // each joined error, in order
	}{
		{"byte order mark at the start", "\xEF\xBB\xBFbusybox:1\nalpine\n",
			[]string{"docker.io/library/busybox:1", "docker.io/library/alpine:latest"}, nil},
		{"byte order mark on a comment line", "\xEF\xBB\xBF# list\nbusybox:1",
			[]string{"docker.io/library/busybox:1"}, nil},
		{"CRLF endings and no final newline", "busybox:1\r\nalpine:3\r\npause:3.9",
			[]string{"docker.io/library/busybox:1", "docker.io/library/alpine:3",
				"docker.io/library/pause:3.9"}, nil},
		{"line over the limit, the rest still read", "busybox:1\n" + long + "\nalpine:3\n",
			[]string{"docker.io/library/busybox:1", "docker.io/library/alpine:3"},
			[]string{"list.txt:2: line is 70000 bytes long, over the 4096-byte limit of " +
				"a reference"}},
		// bufio.Reader reads 4096 bytes at a time: the CR ends the second read.
		{"CR and LF split across reads", strings.Repeat("a", 8191) + "\r\n",
			nil, []string{"list.txt:1: line is 8191 bytes long, over the 4096-byte limit " +
				"of a reference"}},
		{"one byte over the limit", strings.Repeat("a", 4097) + "\n", nil,
			[]string{"list.txt:1: line is 4097 bytes long, over the 4096-byte limit " +
				"of a reference"}},
		{"at the limit: parsed, quoted short", strings.Repeat("a", 4096), nil,
			[]string{"list.txt:1: parse reference \"" + strings.Repeat("a", 80) +
				"\"… (4096 bytes): repository name must not be more than 255 characters"}},
		{"long comment after a reference", "busybox:1 # " + long + "\n",
			[]string{"docker.io/library/busybox:1"}, nil},
		{"control bytes without NUL", "busybox:1\n\x1f\x8b\x08\x03junk\n",
			[]string{"docker.io/library/busybox:1"},
			[]string{`list.txt:2: not text (byte 1 is 0x1f): "\x1f\x8b\b\x03junk"; ` +
				`is this an image list?`}},
		{"gzip header: one error, no references", "busybox:1\nBad\n" +
			"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03junk\nalpine\n", nil,
			[]string{notText}},
		{"NUL past the kept part of a long line", "busybox:1\n" + long + "\x00\n", nil,
			[]string{notText}},
		{"NUL in a comment", "busybox:1 # \x00\n", nil, []string{notText}},
		{"UTF-16LE with its byte order mark", "\xFF\xFEb\x00u\x00s\x00y\x00\n\x00", nil,
			[]string{"list.txt is UTF-16 text (it starts with a UTF-16 byte order mark); " +
				"save it as UTF-8, with one image reference per line"}},
		{"invalid UTF-8", "busybox:\xff1\n", nil,
			[]string{`list.txt:1: not text (byte 9 is 0xff): "busybox:\xff1"; ` +
				`is this an image list?`}},
		{"junk quoted to 80 bytes", strings.Repeat("\x01", 100), nil,
			[]string{`list.txt:1: not text (byte 1 is 0x1): "` +
				strings.Repeat(`\x01`, 80) + `"… (100 bytes); is this an image list?`}},
		{"every bad line reported", "Bad\nbusybox\nx y\n", []string{
			"docker.io/library/busybox:latest"}, []string{
			`list.txt:1: parse reference "Bad": invalid reference format: repository name ` +
				`(library/Bad) must be lowercase`,
			`list.txt:3: parse reference "x y": invalid reference format`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, err := ParseList(strings.NewReader(tt.in), "list.txt")

			var got []string
			for _, r := range refs {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantRefs, "\n") {
				t.Errorf("refs = %q, want %q", got, tt.wantRefs)
			}

			errs := splitErrors(err)
			if strings.Join(errs, "\n") != strings.Join(tt.wantErrs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"),
					strings.Join(tt.wantErrs, "\n"))
			}
		})
	}
}

// splitErrors returns the messages an errors.Join error joins, or err's own message when
// it joins none; nil for a nil err.
func splitErrors(err error) []string {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []string{err.Error()}
	}

	var msgs []string
	for _, e := range joined.Unwrap() {
		msgs = append(msgs, e.Error())
	}

	return msgs
}

// A list of mostly bad lines reports the first 20 and counts the rest, and still returns
// its valid references, whether they come before or after the cut.
func TestParseListCapsInvalidLines(t *testing.T) {
	tests := []struct {
		name     string
		bad      int
		wantLast string // the last joined error
	}{
		{"at the cap, no count", 20, `big.txt:21: parse reference "Bad20": invalid ` +
			`reference format: repository name (library/Bad20) must be lowercase`},
		{"one over the cap", 21, "big.txt: … and 1 more invalid line"},
		{"far over the cap", 10_581, "big.txt: … and 10561 more invalid lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list strings.Builder
			list.WriteString("busybox:1\n")
			for i := 1; i <= tt.bad; i++ {
				fmt.Fprintf(&list, "Bad%d\n", i)
			}
			list.WriteString("alpine:3\n")

			refs, err := ParseList(strings.NewReader(list.String()), "big.txt")

			if len(refs) != 2 || refs[0].String() != "docker.io/library/busybox:1" ||
				refs[1].String() != "docker.io/library/alpine:3" {
				t.Errorf("refs = %v, want busybox:1 and alpine:3", refs)
			}
			errs := splitErrors(err)
			if want := min(tt.bad, 20) + min(tt.bad-20, 1); len(errs) != want {
				t.Fatalf("%d errors, want %d:\n%s", len(errs), want, strings.Join(errs, "\n"))
			}
			first := `big.txt:2: parse reference "Bad1": invalid reference format: ` +
				`repository name (library/Bad1) must be lowercase`
			if errs[0] != first {
				t.Errorf("first error = %q, want %q", errs[0], first)
			}
			if got := errs[len(errs)-1]; got != tt.wantLast {
				t.Errorf("last error = %q, want %q", got, tt.wantLast)
			}
		})
	}
}
