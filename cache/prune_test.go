package cache

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestPrune(t *testing.T) {
	tests := []struct {
		name       string
		keep       []string
		wantImages []string // removed
		wantBlobs  func(f *fixture) []BlobInfo
		wantFreed  int64
		wantLeft   []string // images left
	}{
		{
			name: "nil keep removes only unreferenced content",
			keep: nil,
			wantBlobs: func(f *fixture) []BlobInfo {
				return []BlobInfo{{Digest: f.orph.Digest, Size: 500}}
			},
			wantFreed: 500 + 40,
			wantLeft:  []string{nameA, nameB},
		},
		{
			name:       "keep one image keeps the blob it shares",
			keep:       []string{nameA},
			wantImages: []string{nameB},
			wantBlobs: func(f *fixture) []BlobInfo {
				return sortedInfos(BlobInfo{Digest: f.b1.Digest, Size: 300},
					BlobInfo{Digest: f.orph.Digest, Size: 500})
			},
			wantFreed: 300 + 500 + 40,
			wantLeft:  []string{nameA},
		},
		{
			name:       "empty keep removes everything",
			keep:       []string{},
			wantImages: []string{nameA, nameB},
			wantBlobs: func(f *fixture) []BlobInfo {
				return sortedInfos(BlobInfo{Digest: f.a1.Digest, Size: 100},
					BlobInfo{Digest: f.a2.Digest, Size: 200},
					BlobInfo{Digest: f.b1.Digest, Size: 300},
					BlobInfo{Digest: f.sh.Digest, Size: 400},
					BlobInfo{Digest: f.orph.Digest, Size: 500})
			},
			wantFreed: 1500 + 40,
		},
	}
	for _, tt := range tests {
		for _, dryRun := range []bool{true, false} {
			name := tt.name
			if dryRun {
				name += " (dry run)"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t)
				before := listTree(t, f.dir)
				report, err := f.c.Prune(context.Background(), tt.keep, dryRun)
				if err != nil {
					t.Fatal(err)
				}

				want := PruneReport{DryRun: dryRun, Images: tt.wantImages, Blobs: tt.wantBlobs(f),
					Partials: []string{f.stale}, BytesFreed: tt.wantFreed}
				if !reflect.DeepEqual(report, want) {
					t.Fatalf("report = %+v\nwant %+v", report, want)
				}

				if dryRun {
					if after := listTree(t, f.dir); !slices.Equal(after, before) {
						t.Errorf("dry run changed the tree:\n%v\nwas\n%v", after, before)
					}
					return
				}
				checkPruned(t, f, report, tt.wantLeft)
			})
		}
	}
}

// checkPruned checks that what report lists is gone and that the cache verifies clean.
func checkPruned(t *testing.T, f *fixture, report PruneReport, wantLeft []string) {
	t.Helper()
	images, err := f.c.Images()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, img := range images {
		left = append(left, img.Name)
	}
	if !slices.Equal(left, wantLeft) {
		t.Errorf("images left = %v, want %v", left, wantLeft)
	}

	index, _ := os.ReadFile(f.c.path(indexFile))
	for _, name := range report.Images {
		if strings.Contains(string(index), name) {
			t.Errorf("index.json still names %s", name)
		}
	}

	for _, b := range report.Blobs {
		if _, ok := f.c.HasBlob(b.Digest); ok {
			t.Errorf("blob %s survived", b.Digest)
		}
	}

	v, err := f.c.Verify(context.Background(), false)
	if err != nil || !v.OK() || len(v.Orphaned) != 0 || len(v.StalePartials) != 0 {
		t.Errorf("Verify after prune = %+v, %v; want clean", v, err)
	}
}

func TestPruneUnknownNameRemovesNothing(t *testing.T) {
	f := newFixture(t)
	before := listTree(t, f.dir)

	_, err := f.c.Prune(context.Background(), []string{nameA, "docker.io/library/typo:1"}, false)
	want := "prune cache " + f.dir + ": images to keep docker.io/library/typo:1 are not " +
		"cached; check the names against dls ls: not found in cache"
	if !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Fatalf("Prune with an unknown name: %v\nwant ErrNotFound: %s", err, want)
	}
	if after := listTree(t, f.dir); !slices.Equal(after, before) {
		t.Errorf("failed prune changed the tree:\n%v\nwas\n%v", after, before)
	}
}

func TestPruneKeepsActiveDownload(t *testing.T) {
	f := newFixture(t)
	w := mustIngest(t, f.c, f.orph, 40)
	defer w.Close()

	report, err := f.c.Prune(context.Background(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Partials) != 0 {
		t.Errorf("Prune removed partials %v while one was being written", report.Partials)
	}
	if _, err := os.Stat(w.path); err != nil {
		t.Errorf("active partial gone: %v", err)
	}

	r := openReadOnly(t, f.dir)
	if _, err := r.Prune(context.Background(), nil, false); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Prune on a read-only cache: %v; want ErrReadOnly", err)
	}
}

func TestPruneKeepsDownloadsOfIncompleteImages(t *testing.T) {
	f := newFixture(t)
	in := interruptFetch(t, f)

	report, err := f.c.Prune(context.Background(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(report.Partials, []string{f.stale}) {
		t.Errorf("Prune removed partials %v, want only the orphan's [%s]", report.Partials,
			f.stale)
	}
	if _, err := os.Stat(f.c.path(partialDir, in.partial)); err != nil {
		t.Errorf("Prune removed the download of %s, which %s needs: %v", in.c2.Digest, nameC,
			err)
	}
}

// sortedInfos returns blobs sorted by digest.
func sortedInfos(blobs ...BlobInfo) []BlobInfo {
	slices.SortFunc(blobs, compareBlobs)
	return blobs
}
