package assemble

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWriteFileRefusesDirectoryOutput checks that an output name, or a split part's name,
// taken by a directory is refused before any archive is written, naming it.
func TestWriteFileRefusesDirectoryOutput(t *testing.T) {
	s := newTestSource(t)
	f := newSplitFixture(t, s)
	maxSize := contentSize(t, s, f.names[0], f.names[1])
	cases := []struct {
		name, taken string
		maxSize     int64
		want        string
	}{
		{"the output", "images.tar", 0, "check output DIR/images.tar: it is a directory; " +
			"name the archive file, such as DIR/images.tar/images.tar"},
		{"a split part", "images-2.tar", maxSize, "check output DIR/images-2.tar: it is a " +
			"directory; name the archive file, such as DIR/images-2.tar/images.tar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := os.Mkdir(filepath.Join(dir, tc.taken), 0o755)
			if err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			opts := Options{MaxSize: tc.maxSize, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			_, err = WriteFile(context.Background(), s, filepath.Join(dir, "images.tar"), opts)
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || err.Error() != want {
				t.Errorf("error %v\nwant %s", err, want)
			}

			if strings.Contains(logs.String(), "wrote archive") {
				t.Errorf("an archive was written before failing:\n%s", logs.String())
			}

			if names := dirNames(t, dir); !slices.Equal(names, []string{tc.taken}) {
				t.Errorf("directory holds %v, want only %s", names, tc.taken)
			}
		})
	}
}

// TestWriteFileRemovesStaleTemps leaves temporary files as killed runs would, some last
// written two hours ago and one ten minutes ago, beside look-alikes of other outputs:
// only the old ones of images.tar and its parts go, each logged.
func TestWriteFileRemovesStaleTemps(t *testing.T) {
	s := newTestSource(t)
	s.singleImage("docker.io/library/a:1", s.buildManifest(t, linuxAMD64, []byte("a")))
	dir := t.TempDir()
	now := time.Now()
	old, young := now.Add(-2*time.Hour), now.Add(-10*time.Minute)
	files := []struct {
		name    string
		mtime   time.Time
		removed bool
	}{
		{".images.tar.tmp-3k9x0q", old, true},
		{".images-2.tar.tmp-1abz", old, true},
		{".images.tar.tmp-7yy2", young, false},
		{".other.tar.tmp-3k9x0q", old, false},
		{".images-x.tar.tmp-3k9x0q", old, false},
		{".images.tar.tmp-UPPER", old, false},
		{".images.tar.tmp-", old, false},
		{"images.tar.tmp-3k9x0q", old, false},
	}
	var kept []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		err := os.WriteFile(path, []byte("partial"), 0o644)
		if err == nil {
			err = os.Chtimes(path, f.mtime, f.mtime)
		}
		if err != nil {
			t.Fatal(err)
		}

		if !f.removed {
			kept = append(kept, f.name)
		}
	}

	var logs bytes.Buffer
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	_, err := WriteFile(context.Background(), s, filepath.Join(dir, "images.tar"), opts)
	if err != nil {
		t.Fatal(err)
	}

	want := slices.Sorted(slices.Values(append(kept, "images.tar")))
	if names := dirNames(t, dir); !slices.Equal(names, want) {
		t.Errorf("directory holds\n%v\nwant\n%v", names, want)
	}

	for _, f := range files {
		logged := strings.Contains(logs.String(), "level=INFO msg=\"removed a temporary "+
			"archive an interrupted run left\" path="+filepath.Join(dir, f.name)+" ")
		if logged != f.removed {
			t.Errorf("%s: logged %v, want %v:\n%s", f.name, logged, f.removed, logs.String())
		}
	}
}

// TestWriteWarnsAboutDeepImages checks the warning for images docker load cannot stack.
func TestWriteWarnsAboutDeepImages(t *testing.T) {
	cases := []struct {
		name   string
		layers int
		warned bool
	}{
		{"at docker's limit", 125, false},
		{"over docker's limit", 126, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			s.repeatedLayerImage(t, "docker.io/library/deep:1", "layer", tc.layers)
			var logs bytes.Buffer
			opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			_, err := Write(context.Background(), s, &bytes.Buffer{}, opts)
			if err != nil {
				t.Fatal(err)
			}

			want := ""
			if tc.warned {
				want = `level=WARN msg="image has more layers than docker load with classic ` +
					`storage accepts (it fails with \"max depth exceeded\"); containerd, k3s ` +
					`and podman load it" image=docker.io/library/deep:1 layers=126 ` +
					"docker_max=125\n"
			}
			var warnings string
			for line := range strings.Lines(logs.String()) {
				if _, record, ok := strings.Cut(line, " level=WARN "); ok {
					warnings += "level=WARN " + record
				}
			}
			if warnings != want {
				t.Errorf("warnings:\n%s\nwant:\n%s", warnings, want)
			}
		})
	}
}
