package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"
	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/integration/testimage"
)

// problemAbsent is the Problem of a blob the index records that has no file.
const problemAbsent = "absent, though the index records it as fetched"

// blobFile is where a cache keeps blob d.
func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// flipByte inverts the byte in the middle of the blob d of the cache at dir and returns the
// digest of the damaged content.
func flipByte(t testing.TB, dir string, d digest.Digest) digest.Digest {
	t.Helper()

	path := blobFile(dir, d)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}

	return digest.FromBytes(data)
}

// jsonString renders v for a failure message.
func jsonString(v any) string {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}

	return string(data)
}

// checkReport fails t when got and want differ, showing both.
func checkReport(t testing.TB, what string, got, want any) {
	t.Helper()

	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n%s\nwant:\n%s", what, jsonString(got), jsonString(want))
	}
}

// TestVerifyFindsDamageAndFetchRepairsIt damages three blobs in three ways, checks exactly
// what dls verify reports, repairs, and checks that the next fetch downloads exactly those
// three blobs and restores the archive byte for byte.
func TestVerifyFindsDamageAndFetchRepairsIt(t *testing.T) {
	fx := newFixture(t, smallList, "")
	proxy := startProxy(t, fx.Reg.URL, proxyOptions{})
	fc := newFetchedCache(t, fx, writeRegistries(t, "docker.io", proxy.URL), smallList)
	pause, klipper := fx.Images[0].Name, fx.Images[1].Name
	pauseHost, klipperHost := fx.hostImage(t, fx.Images[0]), fx.hostImage(t, fx.Images[1])

	// The base layer both images share, pause's own layer, klipper's config.
	shared, own, config := pauseHost.Layers[0], pauseHost.Layers[1], klipperHost.Config
	flipped := flipByte(t, fc.Dir, shared.Digest())
	ownSize := int64(len(own.Data))
	if err := os.Truncate(blobFile(fc.Dir, own.Digest()), ownSize-100); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blobFile(fc.Dir, config.Digest())); err != nil {
		t.Fatal(err)
	}

	want := cache.VerifyReport{
		Blobs: len(fx.hostBlobs()) - 1,
		Bytes: totalSize(fx.hostBlobs()) - config.Descriptor.Size - 100,
		Corrupt: []cache.Defect{
			{Digest: shared.Digest(), Expected: int64(len(shared.Data)),
				Actual: int64(len(shared.Data)), Problem: "content hashes to " + flipped.String(),
				Images: []string{klipper, pause}},
			{Digest: own.Digest(), Expected: ownSize, Actual: ownSize - 100,
				Problem: fmt.Sprintf("size %d, expected %d", ownSize-100, ownSize),
				Images:  []string{pause}},
		},
		Missing: []cache.Defect{{Digest: config.Digest(), Expected: config.Descriptor.Size,
			Actual: -1, Problem: problemAbsent, Images: []string{klipper}}},
	}
	slices.SortFunc(want.Corrupt, func(a, b cache.Defect) int {
		return strings.Compare(a.Digest.String(), b.Digest.String())
	})

	t.Run("verify reports each damaged blob and its images", func(t *testing.T) {
		got, code := verifyReport(t, fc.Work, fc.Dir)
		if code != 1 {
			t.Errorf("dls verify: exit %d, want 1", code)
		}
		checkReport(t, "dls verify --json", got, want)
		checkVerifyText(t, fc, want)
	})

	t.Run("repair removes them and status names the incomplete images", func(t *testing.T) {
		got, code := verifyReport(t, fc.Work, fc.Dir, "--repair")
		repaired := want
		repaired.Repaired = []digest.Digest{shared.Digest(), own.Digest(), config.Digest()}
		slices.Sort(repaired.Repaired)
		if code != 1 {
			t.Errorf("dls verify --repair: exit %d, want 1", code)
		}
		checkReport(t, "dls verify --repair --json", got, repaired)
		for _, d := range repaired.Repaired {
			if _, err := os.Stat(blobFile(fc.Dir, d)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("blob %s after repair: %v, want it removed", d, err)
			}
		}
		checkIncompleteStatus(t, fc, map[string]int{pause: 2, klipper: 2})
	})

	t.Run("the next fetch downloads exactly the repaired blobs", func(t *testing.T) {
		fx.Reg.ResetCounts()
		proxy.Reset()
		mustDLS(t, fc.Work, fc.fetchArgs(fc.Dir)...)
		wantGETs := []digest.Digest{shared.Digest(), own.Digest(), config.Digest()}
		slices.Sort(wantGETs)
		if got := proxy.BlobGETs(); !slices.Equal(got, wantGETs) {
			t.Errorf("fetch after repair GET the blobs %s, want %s", got, wantGETs)
		}
		if n := fx.Reg.Requests("GET blob"); n != len(wantGETs) {
			t.Errorf("registry served %d blob GETs, want %d", n, len(wantGETs))
		}
		mustVerify(t, fc.Work, fc.Dir)
		if got := assembleDigest(t, fc.Work, fc.Dir, fc.List); got != fc.Archive {
			t.Errorf("archive after repair is %s, before the damage %s", got, fc.Archive)
		}
	})
}

// verifyResult is what dls verify --json prints.
type verifyResult struct {
	cache.VerifyReport
	IndexRebuild *cache.IndexRebuild `json:"index_rebuild"`
}

// TestVerifyRepairRebuildsADamagedIndex overwrites the index.db of a fetched cache, checks
// that commands name the damage and the way out, that dls verify --repair rebuilds the index
// from the blobs naming the image records lost, and that the next fetch records the images
// again without downloading a blob and gives the same archive.
func TestVerifyRepairRebuildsADamagedIndex(t *testing.T) {
	fx := newFixture(t, smallList, "")
	fc := newFetchedCache(t, fx, "", smallList)
	index := filepath.Join(fc.Dir, "index.db")
	if err := os.WriteFile(index, []byte(strings.Repeat("not bbolt ", 2000)), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("commands name the damage and the repair", func(t *testing.T) {
		want := "read index " + index + ": it is damaged (invalid database); the blobs are " +
			"files of their own that it does not affect: run dls verify --repair to rebuild " +
			"it from them, then dls fetch with your lists to record the images again (no " +
			"blob is downloaded again): cache index is damaged\n"
		for _, args := range [][]string{
			{"verify", "--cache", fc.Dir},
			{"ls", "--cache", fc.Dir},
			{"prune", "--cache", fc.Dir},
			{"prune", "--cache", fc.Dir, "--dry-run"},
		} {
			res := runDLS(t, fc.Work, args...)
			if res.Code != 1 || !strings.HasSuffix(res.Stderr, want) {
				t.Errorf("dls %s: exit %d, stderr:\n%s\nwant 1 and an error ending in:\n%s",
					strings.Join(args, " "), res.Code, res.Stderr, want)
			}
		}
	})

	t.Run("verify --repair rebuilds it from the blobs", func(t *testing.T) {
		res := runDLS(t, fc.Work, "verify", "--cache", fc.Dir, "--repair", "--json")
		var got verifyResult
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			t.Fatalf("decode dls verify --repair --json: %v\n%s", err, res.Stdout)
		}
		checkReport(t, "index rebuild", got.IndexRebuild, &cache.IndexRebuild{
			Blobs: len(fx.hostBlobs()), LostImages: smallListSorted(),
			Damaged: index + ".damaged"})
		if !got.OK() || !slices.Equal(got.LostImages, smallListSorted()) ||
			got.Blobs != len(fx.hostBlobs()) || len(got.Orphaned) != len(fx.hostBlobs()) {
			t.Errorf("dls verify --repair: %s; want every blob intact and orphaned, every "+
				"image lost", jsonString(got.VerifyReport))
		}
		advice := "re-run dls fetch with your lists to re-record the images; no blob will " +
			"be downloaded again"
		if res.Code != 1 || !strings.Contains(res.Stderr, advice) {
			t.Errorf("dls verify --repair: exit %d, stderr:\n%s\nwant 1 and %q", res.Code,
				res.Stderr, advice)
		}
	})

	t.Run("prune without a list keeps the blobs of the lost images", func(t *testing.T) {
		res := runDLS(t, fc.Work, "prune", "--cache", fc.Dir)
		want := "the records of " + strings.Join(smallListSorted(), ", ") + " were lost " +
			"when index.db was rebuilt"
		if res.Code != 1 || !strings.Contains(res.Stderr, want) {
			t.Errorf("dls prune: exit %d, stderr:\n%s\nwant 1 and %q", res.Code, res.Stderr,
				want)
		}
		if n := len(cachedBlobs(t, fc.Dir)); n != len(fx.hostBlobs()) {
			t.Errorf("cache holds %d blobs after a refused prune, want %d", n,
				len(fx.hostBlobs()))
		}
	})

	t.Run("the next fetch downloads no blob", func(t *testing.T) {
		fx.Reg.ResetCounts()
		mustDLS(t, fc.Work, fc.fetchArgs(fc.Dir)...)
		if n := fx.Reg.Requests("GET blob"); n != 0 {
			t.Errorf("fetch after the rebuild GET %d blobs, want 0", n)
		}
		report := mustVerify(t, fc.Work, fc.Dir)
		if !report.Complete() || len(report.Orphaned) != 0 {
			t.Errorf("dls verify after the fetch: %s; want complete, no orphan",
				jsonString(report))
		}
		if got := assembleDigest(t, fc.Work, fc.Dir, fc.List); got != fc.Archive {
			t.Errorf("archive after the rebuild is %s, before the damage %s", got, fc.Archive)
		}
	})
}

// checkVerifyText checks the lines dls verify prints for the report want, and that its
// error names the images that cannot be assembled.
func checkVerifyText(t *testing.T, fc fetchedCache, want cache.VerifyReport) {
	res := runDLS(t, fc.Work, "verify", "--cache", fc.Dir)
	var lines []string
	for _, d := range want.Corrupt {
		lines = append(lines, fmt.Sprintf("corrupt   %s  %s; needed by %s", d.Digest,
			d.Problem, strings.Join(d.Images, ", ")))
	}
	for _, d := range want.Missing {
		lines = append(lines, fmt.Sprintf("missing   %s  %s; needed by %s", d.Digest,
			problemAbsent, strings.Join(d.Images, ", ")))
	}
	lines = append(lines, fmt.Sprintf("verified %d blobs, %s: 2 corrupt, 1 missing, "+
		"0 orphaned, 0 stale partial downloads", want.Blobs, humanSize(want.Bytes)))
	if got := strings.Split(strings.TrimSpace(res.Stdout), "\n"); !slices.Equal(got, lines) {
		t.Errorf("dls verify printed:\n%s\nwant:\n%s", res.Stdout, strings.Join(lines, "\n"))
	}

	wantErr := "images that cannot be assembled: " + strings.Join(smallListSorted(), ", ")
	if res.Code != 1 || !strings.Contains(res.Stderr, wantErr) {
		t.Errorf("dls verify: exit %d, stderr without %q", res.Code, wantErr)
	}
}

// smallListSorted is smallList in name order, the order dls names affected images in.
func smallListSorted() []string {
	return slices.Sorted(slices.Values(smallList))
}

// humanSize formats n as dls does, e.g. "1.5 KiB".
func humanSize(n int64) string {
	return humanize.IBytes(uint64(n))
}

// statusReport is what dls status --json prints.
type statusReport struct {
	Images []struct {
		Name     string `json:"name"`
		Blobs    int    `json:"blobs"`
		Missing  int    `json:"missing_blobs"`
		Complete bool   `json:"complete"`
	} `json:"images"`
	NotCached []string    `json:"not_cached"`
	Listed    bool        `json:"listed"`
	Usage     cache.Usage `json:"usage"`
}

// checkIncompleteStatus checks that dls status of the list plus an image never fetched
// fails naming every image, with missing holding how many blobs each cached one lacks.
func checkIncompleteStatus(t *testing.T, fc fetchedCache, missing map[string]int) {
	const never = "docker.io/rancher/never-fetched:1.0"
	res := runDLS(t, fc.Work, "status", "--cache", fc.Dir, "--json", "--image", never, fc.List)
	var got statusReport
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		t.Fatalf("decode dls status --json: %v\n%s", err, res.Stdout)
	}

	if res.Code != 1 || !slices.Equal(got.NotCached, []string{never}) || !got.Listed {
		t.Errorf("dls status: exit %d, not cached %q, listed %v; want exit 1, [%s], true",
			res.Code, got.NotCached, got.Listed, never)
	}
	gotMissing := map[string]int{}
	for _, img := range got.Images {
		gotMissing[img.Name] = img.Missing
		if img.Complete {
			t.Errorf("dls status says %s is complete", img.Name)
		}
	}
	checkReport(t, "blobs missing per image", gotMissing, missing)
	for name := range missing {
		if !strings.Contains(res.Stderr, name) {
			t.Errorf("dls status error does not name %s:\n%s", name, res.Stderr)
		}
	}
}

// TestPruneKeepsListedImages prunes a cache of two images down to one, first as a dry run,
// and checks the exact blobs and bytes that go.
func TestPruneKeepsListedImages(t *testing.T) {
	fx := newFixture(t, smallList, "")
	fc := newFetchedCache(t, fx, "", smallList)
	host := testimage.FormatPlatform(fx.Host)
	keep := writeFile(t, fc.Work, "keep.txt", smallList[0]+"\n")

	kept := map[digest.Digest]bool{}
	for _, b := range fx.Images[0].Index.BlobsFor(host) {
		kept[b.Digest()] = true
	}
	want := cache.PruneReport{Images: []string{fx.Images[1].Name}}
	for _, b := range fx.Images[1].Index.BlobsFor(host) {
		if !kept[b.Digest()] {
			want.Blobs = append(want.Blobs, cache.BlobInfo{Digest: b.Digest(),
				Size: b.Descriptor.Size})
			want.BytesFreed += b.Descriptor.Size
		}
	}
	slices.SortFunc(want.Blobs, func(a, b cache.BlobInfo) int {
		return strings.Compare(a.Digest.String(), b.Digest.String())
	})

	t.Run("a dry run removes nothing", func(t *testing.T) {
		dry := want
		dry.DryRun = true
		checkReport(t, "dls prune --dry-run", pruneReport(t, fc, "--dry-run", keep), dry)
		if n := len(cachedBlobs(t, fc.Dir)); n != len(fx.hostBlobs()) {
			t.Errorf("cache holds %d blobs after a dry run, want %d", n, len(fx.hostBlobs()))
		}
		res := mustDLS(t, fc.Work, "prune", "--cache", fc.Dir, "--dry-run", keep)
		summary := fmt.Sprintf("would remove 1 image, %d blobs, 0 partial downloads; "+
			"would free %s\n", len(want.Blobs), humanSize(want.BytesFreed))
		if !strings.HasPrefix(res.Stdout, "image    "+fx.Images[1].Name+"\n") ||
			!strings.HasSuffix(res.Stdout, summary) {
			t.Errorf("dls prune --dry-run printed:\n%s\nwant the image first and last:\n%s",
				res.Stdout, summary)
		}
	})

	t.Run("prune removes the blobs only the other image needs", func(t *testing.T) {
		checkReport(t, "dls prune", pruneReport(t, fc, keep), want)
		got := cachedBlobs(t, fc.Dir)
		if len(got) != len(kept) {
			t.Errorf("cache holds %d blobs after prune, want %d", len(got), len(kept))
		}
		for d := range kept {
			if !got[d] {
				t.Errorf("prune removed %s, which %s needs", d, smallList[0])
			}
		}
		report := mustVerify(t, fc.Work, fc.Dir)
		if len(report.Orphaned) != 0 || len(report.StalePartials) != 0 {
			t.Errorf("verify after prune: %+v, want no orphans or partials", report)
		}
		mustDLS(t, fc.Work, "status", "--cache", fc.Dir, keep)
	})

	t.Run("a list naming an image not cached removes nothing", func(t *testing.T) {
		res := runDLS(t, fc.Work, "prune", "--cache", fc.Dir, fc.List)
		want := "dls: prune cache " + fc.Dir + ": images to keep " + fx.Images[1].Name +
			" are not cached; check the names against dls ls: not found in cache\n"
		if res.Code != 1 || res.Stderr != want {
			t.Errorf("dls prune keeping an uncached image: exit %d, stderr:\n%s\n"+
				"want 1 and:\n%s", res.Code, res.Stderr, want)
		}
		if n := len(cachedBlobs(t, fc.Dir)); n != len(kept) {
			t.Errorf("cache holds %d blobs, want %d", n, len(kept))
		}
	})
}

// pruneReport runs dls prune --json with args and returns its report.
func pruneReport(t testing.TB, fc fetchedCache, args ...string) cache.PruneReport {
	t.Helper()

	res := mustDLS(t, fc.Work, append([]string{"prune", "--cache", fc.Dir, "--json"},
		args...)...)
	var report cache.PruneReport
	if err := json.Unmarshal([]byte(res.Stdout), &report); err != nil {
		t.Fatalf("decode dls prune --json: %v\n%s", err, res.Stdout)
	}

	return report
}
