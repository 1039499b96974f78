package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitStatuses runs the command line in-process for the cases that need no registry;
// the integration tests run the binary against real registries.
func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	badList := filepath.Join(dir, "bad.txt")
	err := os.WriteFile(badList, []byte("# ok\nbusybox:1.37\nBad Ref\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	noCache := filepath.Join(dir, "none")
	emptyList := filepath.Join(dir, "empty.txt")
	err = os.WriteFile(emptyList, []byte("# nothing yet\n\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	noImage := "empty.txt names no image, only blank lines and comments"

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help answers and runs nothing", []string{"prune", "--help"}, 0,
			"Usage: dls prune", ""},
		{"version", []string{"--version"}, 0, "dev", ""},
		{"unknown command is a usage error", []string{"frobnicate"}, exitUsage, "",
			"unexpected argument frobnicate"},
		{"bad flag value is a usage error", []string{"assemble", "-o", "x.tar",
			"--max-size", "2XB"}, exitUsage, "", `size "2XB"`},
		{"invalid list line is a usage error naming file and line",
			[]string{"fetch", "--cache", noCache, badList}, exitUsage, "", "bad.txt:3"},
		{"no images to fetch is a usage error", []string{"fetch", "--cache", noCache},
			exitUsage, "", "no images given; give an image list or --image REF"},
		{"fetch of an empty list names it", []string{"fetch", "--cache", noCache, emptyList},
			exitUsage, "", noImage},
		{"assemble of an empty list writes nothing", []string{"assemble", "--cache", noCache,
			"-o", filepath.Join(dir, "x.tar"), emptyList}, exitUsage, "", noImage},
		{"status of an empty list is no answer", []string{"status", "--cache", noCache,
			emptyList}, exitUsage, "", noImage},
		{"prune to an empty list removes nothing", []string{"prune", "--cache", noCache,
			emptyList}, exitUsage, "", noImage},
		{"empty standard input", []string{"assemble", "--cache", noCache, "-o",
			filepath.Join(dir, "x.tar"), "-"}, exitUsage, "",
			"standard input names no image"},
		{"zero download slots", []string{"fetch", "--cache", noCache, "--concurrency", "0",
			"--image", "busybox"}, exitUsage, "", "--concurrency 0: give 1 or more"},
		{"negative retries", []string{"fetch", "--cache", noCache, "--retries=-1",
			"--image", "busybox"}, exitUsage, "", "--retries -1: give 0 (none) or more"},
		{"negative per-registry limit", []string{"fetch", "--cache", noCache,
			"--per-registry=-2", "--image", "busybox"}, exitUsage, "", "--per-registry -2"},
		{"merge of a missing source creates nothing", []string{"merge", "--cache", noCache,
			filepath.Join(dir, "nope")}, exitUsage, "", "nope"},
		{"one-part platform of fetch is a usage error", []string{"fetch", "--cache", noCache,
			"--platform", "linux", "--image", "busybox"}, exitUsage, "",
			`dls: fetch: parse platform "linux" (want os[(os.version)]/arch[/variant], e.g. ` +
				"linux/arm64): give both os and arch; dls never fills one in from the host\n"},
		{"unparsable platform of fetch is a usage error", []string{"fetch", "--cache",
			noCache, "--platform", "linux/", "--image", "busybox"}, exitUsage, "",
			`dls: fetch: parse platform "linux/"`},
		{"one-part platform of assemble is a usage error", []string{"assemble", "--cache",
			noCache, "-o", filepath.Join(dir, "x.tar"), "--platform", "arm64"}, exitUsage, "",
			`dls: assemble: parse platform "arm64" (want os[(os.version)]/arch[/variant], ` +
				"e.g. linux/arm64): give both os and arch; dls never fills one in from the host"},
		{"unparsable platform of assemble is a usage error", []string{"assemble", "--cache",
			noCache, "-o", filepath.Join(dir, "x.tar"), "--platform", "li nux/amd64"},
			exitUsage, "", `dls: assemble: parse platform "li nux/amd64"`},
		{"empty -o is a usage error", []string{"assemble", "--cache", noCache, "-o", ""},
			exitUsage, "", `dls: assemble: -o "": give the archive file to write, e.g. ` +
				"-o images.tar, or -o - for standard output\n"},
		{"ls of a missing cache", []string{"ls", "--cache", noCache}, exitFailure, "",
			"no index.db"},
		{"assemble of a missing cache", []string{"assemble", "--cache", noCache, "-o",
			filepath.Join(dir, "x.tar")}, exitFailure, "", "no index.db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(tc.args, strings.NewReader(""), &stdout, &stderr)

			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}

	if _, err := os.Stat(noCache); !os.IsNotExist(err) {
		t.Errorf("a cache was created at %s by commands that must not create one", noCache)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tar")); !os.IsNotExist(err) {
		t.Errorf("an archive was written from a missing cache")
	}
}
