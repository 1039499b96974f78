package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// unique is the unique bytes of judgedBench's corpus.
const unique = 1000 << 20

// judgedBench is a bench whose run met every target: the rows and figures the targets
// are judged from, as a run of the full scale would leave them.
func judgedBench() *bench {
	c := &corpus{needed: []blobRef{{desc: ocispec.Descriptor{Size: unique}}}}
	for i := range targetImages {
		c.tags = append(c.tags, repoName(i)+":v1")
	}
	b := &bench{cfg: config{smallImages: 4}, corpus: c}
	for _, s := range []struct {
		scenario            string
		dls, crane, floor   time.Duration
		moved               int64
		fetchRSS, assembled int64
	}{
		{"direct", 10 * time.Second, 11 * time.Second, 9 * time.Second, -1, 60 << 20, 20 << 20},
		{"wan", 20 * time.Second, 61 * time.Second, 19 * time.Second, unique, 60 << 20, 0},
		{"lossy", 30 * time.Second, 0, 25 * time.Second, unique * 104 / 100, 60 << 20, 0},
	} {
		b.rows = append(b.rows,
			row{scenario: s.scenario, tool: "dls fetch", maxRSS: s.fetchRSS, moved: s.moved},
			row{scenario: s.scenario, tool: "dls assemble", maxRSS: s.assembled, moved: -1},
			row{scenario: s.scenario, tool: "dls fetch+assemble", elapsed: s.dls,
				moved: s.moved, maxRSS: s.fetchRSS},
			row{scenario: s.scenario, tool: "crane pull", elapsed: s.crane},
			row{scenario: s.scenario, tool: "floor (6 GETs at once)", elapsed: s.floor})
	}
	b.fig = figures{asm: 11 * time.Second, cat: 10 * time.Second,
		warm: 800 * time.Millisecond, warmManifests: targetImages, warmDone: true,
		smallFetchRSS: 30 << 20, smallAsmRSS: 20 << 20, smallDone: true,
		ls: 150 * time.Millisecond, lsJSON: 180 * time.Millisecond, lsImages: targetLsImages}
	return b
}

// dropRows removes the rows of tool (in every scenario).
func dropRows(b *bench, tool string) {
	var kept []row
	for _, r := range b.rows {
		if r.tool != tool {
			kept = append(kept, r)
		}
	}
	b.rows = kept
}

// setRow changes the row of tool in scenario.
func setRow(b *bench, scenario, tool string, change func(*row)) {
	for i := range b.rows {
		if b.rows[i].scenario == scenario && b.rows[i].tool == tool {
			change(&b.rows[i])
		}
	}
}

func TestTargets(t *testing.T) {
	allPass := []string{pass, pass, pass, pass, pass, pass, pass}
	tests := []struct {
		name   string
		change func(*bench)
		want   []string // verdicts in the order
		// figure is a part of the figure of the first target whose verdict differs from
		// a pass ("" when all pass).
		figure string
	}{
		{"every target met", func(*bench) {}, allPass, ""},
		{"crane not run leaves no crane figure", func(b *bench) {
			dropRows(b, "crane pull")
		}, []string{noFigure, noFigure, pass, pass, pass, pass, pass},
			"no crane figure: crane not run"},
		{"crane failed leaves no crane figure", func(b *bench) {
			setRow(b, "wan", "crane pull", func(r *row) { r.err = errors.New("exit status 1") })
		}, []string{pass, noFigure, pass, pass, pass, pass, pass},
			"no crane pull figure: it failed: exit status 1"},
		{"a miss stands without crane's figure", func(b *bench) {
			dropRows(b, "crane pull")
			setRow(b, "direct", "floor (6 GETs at once)", func(r *row) {
				r.elapsed = 7 * time.Second
			})
		}, []string{miss, noFigure, pass, pass, pass, pass, pass}, "1.43× floor (7.00 s)"},
		{"slower than crane on loopback", func(b *bench) {
			setRow(b, "direct", "crane pull", func(r *row) { r.elapsed = 9 * time.Second })
		}, []string{miss, pass, pass, pass, pass, pass, pass}, "1.11× crane (9.00 s)"},
		{"under 3× crane on the WAN", func(b *bench) {
			setRow(b, "wan", "crane pull", func(r *row) { r.elapsed = 59 * time.Second })
		}, []string{pass, miss, pass, pass, pass, pass, pass}, "2.95× faster than crane"},
		{"dls failing on the lossy link", func(b *bench) {
			setRow(b, "lossy", "dls fetch+assemble", func(r *row) {
				r.err = errors.New("exit status 1")
			})
		}, []string{pass, pass, miss, pass, pass, pass, pass}, "dls failed after 30.00 s"},
		{"too many bytes on the lossy link", func(b *bench) {
			setRow(b, "lossy", "dls fetch+assemble", func(r *row) { r.moved = unique * 2 })
		}, []string{pass, pass, miss, pass, pass, pass, pass}, "moved 2.000× unique"},
		{"a blob request in the warm re-run", func(b *bench) { b.fig.warmBlobReqs = 1 },
			[]string{pass, pass, pass, pass, miss, pass, pass}, "1 blob requests"},
		{"assemble slower than 1.2× cat", func(b *bench) { b.fig.asm = 13 * time.Second },
			[]string{pass, pass, pass, miss, pass, pass, pass}, "1.30× (assemble 13.00 s"},
		{"RSS not measured", func(b *bench) { b.fig.smallAsmRSS = 0 },
			[]string{pass, pass, pass, pass, pass, noFigure, pass}, "not measured"},
		{"RSS over 100 MB", func(b *bench) {
			setRow(b, "direct", "dls fetch", func(r *row) { r.maxRSS = 100_000_001 })
		}, []string{pass, pass, pass, pass, pass, miss, pass}, "fetch 95 MiB"},
		{"ls too slow", func(b *bench) { b.fig.ls = 200 * time.Millisecond },
			[]string{pass, pass, pass, pass, pass, pass, miss}, "200 ms on 1000 images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := judgedBench()
			tt.change(b)

			got := b.targets()
			var verdicts []string
			figure := ""
			for _, tg := range got {
				verdicts = append(verdicts, tg.verdict)
				if figure == "" && tg.verdict != pass {
					figure = tg.figure
				}
			}
			if strings.Join(verdicts, ",") != strings.Join(tt.want, ",") {
				t.Errorf("verdicts = %q, want %q", verdicts, tt.want)
			}
			if !strings.Contains(figure, tt.figure) || (tt.figure == "") != (figure == "") {
				t.Errorf("figure = %q, want one containing %q", figure, tt.figure)
			}
		})
	}
}

// Of several rounds each tool keeps its median run, in the order tools first ran, and a
// failure in any round is what the tool shows.
func TestMedianRows(t *testing.T) {
	failed := errors.New("exit status 1")
	rows := []row{
		{tool: "dls fetch", elapsed: 3 * time.Second},
		{tool: "crane pull", elapsed: 7 * time.Second},
		{tool: "crane pull", elapsed: 5 * time.Second, err: failed},
		{tool: "dls fetch", elapsed: 1 * time.Second},
		{tool: "dls fetch", elapsed: 2 * time.Second, extra: "0 retries"},
		{tool: "crane pull", elapsed: 6 * time.Second},
	}
	got := medianRows(rows)
	if len(got) != 2 || got[0].tool != "dls fetch" || got[1].tool != "crane pull" {
		t.Fatalf("rows %+v, want dls fetch then crane pull", got)
	}
	if got[0].elapsed != 2*time.Second ||
		got[0].extra != "0 retries; median of 1.00 s, 2.00 s, 3.00 s" {
		t.Errorf("dls fetch: %s, %q; want the 2 s run with every time noted", got[0].elapsed,
			got[0].extra)
	}
	if got[1].err != failed || got[1].elapsed != 5*time.Second {
		t.Errorf("crane pull: %v after %s, want the failed run", got[1].err, got[1].elapsed)
	}
}
