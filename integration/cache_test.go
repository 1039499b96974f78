package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/integration/testimage"
)

// The cache as a portable artifact (DESIGN.md, "The cache directory"): a copied cache, a cache
// on read-only media and a cache read by other OCI tools all work; a damaged one is found
// out and repaired by the next fetch.

// fetchedCache is a cache holding the images of a list, fetched from a fixture's registry.
type fetchedCache struct {
	fx *fixture
	// Work is the test's working directory; Dir the cache in it; List the image list file.
	Work, Dir, List string
	// Registries is the registries.yaml the cache was fetched with.
	Registries string
	// Archive is the sha256 of the archive assembled from the freshly fetched cache.
	Archive digest.Digest
}

// newFetchedCache fetches refs from fx's registry, through registries (fx.Registries when
// ""), into a new cache and assembles the reference archive from it.
func newFetchedCache(t testing.TB, fx *fixture, registries string, refs []string) fetchedCache {
	t.Helper()

	if registries == "" {
		registries = fx.Registries
	}
	work := t.TempDir()
	fc := fetchedCache{fx: fx, Work: work, Dir: filepath.Join(work, "cache"),
		Registries: registries}
	fc.List = writeFile(t, work, "list.txt", strings.Join(refs, "\n")+"\n")
	mustDLS(t, work, fc.fetchArgs(fc.Dir)...)
	fc.Archive = assembleDigest(t, work, fc.Dir, fc.List)

	return fc
}

// fetchArgs is the dls fetch command line that fills dir with the list's host images.
func (fc fetchedCache) fetchArgs(dir string) []string {
	return []string{"fetch", "--cache", dir, "--registries", fc.Registries,
		"--platform", testimage.FormatPlatform(fc.fx.Host), "--json", fc.List}
}

// mustDLS runs dls and fails t unless it exits 0.
func mustDLS(t testing.TB, dir string, args ...string) dlsResult {
	t.Helper()

	res := runDLS(t, dir, args...)
	if res.Code != 0 {
		t.Fatalf("dls %s: exit %d, want 0\nstdout:\n%s", strings.Join(args, " "), res.Code,
			res.Stdout)
	}

	return res
}

// assembleDigest assembles the images of list from cache into a new file and returns the
// archive's sha256.
func assembleDigest(t testing.TB, work, cache, list string) digest.Digest {
	t.Helper()

	out := filepath.Join(t.TempDir(), "images.tar")
	mustDLS(t, work, "assemble", "--cache", cache, "-o", out, list)

	return fileDigest(t, out)
}

// verifyReport runs dls verify --json (with extra flags) and returns its report and exit
// status.
func verifyReport(t testing.TB, work, dir string, flags ...string) (cache.VerifyReport, int) {
	t.Helper()

	args := append([]string{"verify", "--cache", dir, "--json"}, flags...)
	res := runDLS(t, work, args...)
	var report cache.VerifyReport
	if err := json.Unmarshal([]byte(res.Stdout), &report); err != nil {
		t.Fatalf("decode dls %s output: %v\n%s", strings.Join(args, " "), err, res.Stdout)
	}

	return report, res.Code
}

// mustVerify fails t unless dls verify exits 0 with a report of no defects.
func mustVerify(t testing.TB, work, dir string) cache.VerifyReport {
	t.Helper()

	report, code := verifyReport(t, work, dir)
	if code != 0 || !report.OK() {
		t.Fatalf("dls verify --cache %s: exit %d, report %+v; want exit 0, no defects",
			dir, code, report)
	}

	return report
}

// run runs a program that is not dls and fails t unless it succeeds.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()

	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}

	return string(out)
}

func TestCopiedCacheAssemblesTheSameArchive(t *testing.T) {
	fc := newFetchedCache(t, newFixture(t, smallList, ""), "", smallList)
	copies := t.TempDir()
	cpDir := filepath.Join(copies, "cp", "cache")
	tarDir := filepath.Join(copies, "tar", "cache")
	tarFile := filepath.Join(copies, "cache.tar")
	for _, dir := range []string{filepath.Dir(cpDir), filepath.Dir(tarDir)} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "cp", "-r", fc.Dir, cpDir)
	run(t, "tar", "-C", fc.Work, "-cf", tarFile, "cache")
	run(t, "tar", "-C", filepath.Dir(tarDir), "-xf", tarFile)

	// With the original gone from its path, a copy that still pointed at it would fail.
	moved := filepath.Join(fc.Work, "moved")
	if err := os.Rename(fc.Dir, moved); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, dir string }{
		{"copied with cp -r", cpDir},
		{"copied with tar", tarDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report := mustVerify(t, copies, tc.dir)
			if report.Blobs != len(fc.fx.hostBlobs()) {
				t.Errorf("verify hashed %d blobs, want %d", report.Blobs, len(fc.fx.hostBlobs()))
			}
			if got := assembleDigest(t, copies, tc.dir, fc.List); got != fc.Archive {
				t.Errorf("archive from the copy is %s, from the original %s", got, fc.Archive)
			}
		})
	}
}

// mountReadOnly bind-mounts dir read-only at a new path and returns it; the mount goes when
// the test ends. Tests run as root, which chmod does not stop, hence a read-only mount.
func mountReadOnly(t testing.TB, dir string) string {
	t.Helper()

	ro := filepath.Join(t.TempDir(), "ro-cache")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "--bind", dir, ro)
	t.Cleanup(func() {
		if err := syscall.Unmount(ro, 0); err != nil {
			t.Errorf("unmount %s: %v", ro, err)
		}
	})
	run(t, "mount", "-o", "remount,ro,bind", ro)

	err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write into the read-only mount %s: %v, want %v", ro, err, syscall.EROFS)
	}

	return ro
}

func TestReadOnlyCache(t *testing.T) {
	fc := newFetchedCache(t, newFixture(t, smallList, ""), "", smallList)
	ro := mountReadOnly(t, fc.Dir)
	work := t.TempDir()

	t.Run("assemble gives the same archive", func(t *testing.T) {
		if got := assembleDigest(t, work, ro, fc.List); got != fc.Archive {
			t.Errorf("archive from the read-only cache is %s, want %s", got, fc.Archive)
		}
	})
	t.Run("ls and status list every image", func(t *testing.T) {
		ls := mustDLS(t, work, "ls", "--cache", ro)
		status := mustDLS(t, work, "status", "--cache", ro, fc.List)
		for _, name := range smallList {
			if !strings.Contains(ls.Stdout, name) || !strings.Contains(status.Stdout, name) {
				t.Errorf("dls ls or status does not list %s:\n%s\n%s", name, ls.Stdout,
					status.Stdout)
			}
		}
	})
	t.Run("verify passes", func(t *testing.T) {
		mustVerify(t, work, ro)
	})
	t.Run("writing commands fail naming the read-only file system", func(t *testing.T) {
		for _, args := range [][]string{
			{"verify", "--repair", "--cache", ro},
			{"prune", "--cache", ro},
			fc.fetchArgs(ro),
		} {
			res := runDLS(t, work, args...)
			if res.Code != 1 || !strings.Contains(res.Stderr, "read-only file system") {
				t.Errorf("dls %s: exit %d, want 1 and an error naming the read-only file "+
					"system", strings.Join(args, " "), res.Code)
			}
		}
	})
}

// TestSkopeoReadsTheCache reads the cache as the OCI image layout it also is, with skopeo's
// oci: transport. That transport finds an image by org.opencontainers.image.ref.name, which
// the cache sets to the tag, so "oci:CACHE:3.6" names docker.io/rancher/mirrored-pause:3.6.
//
// TODO: skopeo (containers/image) skips index.json descriptors whose media type is not OCI's,
// so images the registry served as Docker manifest lists (klipper-lb here) cannot be read
// through oci: at all; and with two images of one tag it takes the first in index.json.
func TestSkopeoReadsTheCache(t *testing.T) {
	fx := newFixture(t, smallList, "")
	fc := newFetchedCache(t, fx, "", smallList)
	pause := fx.Images[0]
	ref := "oci:" + fc.Dir + ":" + pause.Tag

	t.Run("inspect --raw gives the registry's index", func(t *testing.T) {
		raw := run(t, "skopeo", "inspect", "--raw", ref)
		if raw != string(pause.Index.Index.Data) {
			t.Errorf("skopeo inspect --raw %s:\n%s\nwant the index %s:\n%s", ref, raw,
				pause.Index.Index.Digest(), pause.Index.Index.Data)
		}
	})

	t.Run("copy to dir: gives the host image's bytes", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "image")
		run(t, "skopeo", "--insecure-policy", "copy", ref, "dir:"+out)
		host := fx.hostImage(t, pause)
		want := map[string][]byte{"manifest.json": host.Manifest.Data,
			host.Config.Digest().Encoded(): host.Config.Data}
		for _, l := range host.Layers {
			want[l.Digest().Encoded()] = l.Data
		}
		for name, data := range want {
			got, err := os.ReadFile(filepath.Join(out, name))
			if err != nil || string(got) != string(data) {
				t.Errorf("skopeo copy wrote %s: %d bytes, %v; want the registry's %d bytes",
					name, len(got), err, len(data))
			}
		}
	})

	t.Run("the full reference is not a ref.name", func(t *testing.T) {
		full := "oci:" + fc.Dir + ":" + pause.Name
		out, err := exec.CommandContext(t.Context(), "skopeo", "inspect", full).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no descriptor found") {
			t.Errorf("skopeo inspect %s: %v, want no descriptor found:\n%s", full, err, out)
		}
	})
}

// dirTree lists every path under dir, relative and sorted, for before/after comparisons.
func dirTree(t testing.TB, dir string) []string {
	t.Helper()

	var out []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}

	return out
}

// TestMaintenanceCommandsCreateNoCache points the commands that only read or maintain a cache
// at directories that hold none, and expects each to fail saying so, creating nothing: only
// dls fetch and dls merge make a cache.
func TestMaintenanceCommandsCreateNoCache(t *testing.T) {
	work := t.TempDir()
	empty := filepath.Join(work, "empty")
	// The layout of podman's storage root, an easy directory to mistake for a cache.
	podman := filepath.Join(work, "storage")
	for _, d := range []string{empty, filepath.Join(podman, "overlay"),
		filepath.Join(podman, "overlay-images"), filepath.Join(podman, "overlay-layers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, podman, "storage.lock", "")

	for _, dir := range []string{empty, podman} {
		before := dirTree(t, dir)
		for _, args := range [][]string{
			{"verify"}, {"verify", "--repair"}, {"prune"}, {"prune", "--dry-run"}, {"ls"},
		} {
			res := runDLS(t, work, append(args, "--cache", dir)...)
			want := "dls: no dls cache at " + dir + " (no index.db); check --cache, or run " +
				"dls fetch to create one: not found in cache\n"
			if res.Code != 1 || res.Stderr != want {
				t.Errorf("dls %s --cache %s: exit %d, stderr:\n%s\nwant 1 and:\n%s",
					strings.Join(args, " "), dir, res.Code, res.Stderr, want)
			}
		}
		if after := dirTree(t, dir); !slices.Equal(after, before) {
			t.Errorf("the commands changed %s:\n%v\nwas\n%v", dir, after, before)
		}
	}
}
