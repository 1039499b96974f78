package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The targets of issue 7, each judged by targets() from what the run measured.
const (
	loopbackVsFloor = 1.25                   // cold fetch+assemble ÷ floor, loopback
	wanVsCrane      = 3.0                    // crane ÷ dls fetch+assemble, WAN profile
	assembleVsCatX  = 1.2                    // dls assemble ÷ cat of the same bytes
	warmMax         = time.Second            // warm re-run of the whole list
	rssMax          = 100_000_000            // peak RSS of fetch and of assemble, bytes
	lsMax           = 200 * time.Millisecond // dls ls on the synthetic cache
	// The scale the targets are set for: the corpus and ls cache.
	targetImages   = 40
	targetSize     = 2_000_000_000
	targetLsImages = 1000
)

// figures are the measurements outside b.rows that the targets judge; the zero value of
// each means it was not measured.
type figures struct {
	asm, cat      time.Duration // medians of assembleVsCat
	warm          time.Duration // warm re-run of dls fetch
	warmBlobReqs  int           // GET and HEAD blob requests of the warm re-run
	warmManifests int           // GET and HEAD manifest requests of the warm re-run
	warmDone      bool
	smallFetchRSS int64 // peak RSS of the small list's fetch and assemble
	smallAsmRSS   int64
	smallDone     bool
	ls, lsJSON    time.Duration // dls ls and dls ls --json on the synthetic cache
	lsImages      int
}

// Verdicts of a target. A figure that is missing (crane not run or failed, RSS without
// GNU time) is noFigure, never a pass.
const (
	pass     = "PASS"
	miss     = "MISS"
	noFigure = "NO FIGURE"
)

// target is one row of the targets table.
type target struct {
	goal    string // the target as the issue states it
	figure  string // what was measured, and why a part of it is missing
	verdict string
}

// check is one condition of a target: met or not, or not known.
type check struct {
	known, ok bool
}

// verdict combines checks: any miss is a MISS, since a missing figure cannot redeem it;
// else any unknown is NO FIGURE; else PASS.
func verdict(checks ...check) string {
	unknown := false
	for _, c := range checks {
		if c.known && !c.ok {
			return miss
		}
		unknown = unknown || !c.known
	}
	if unknown {
		return noFigure
	}
	return pass
}

// targets judges every target of issue 7, in the order.
func (b *bench) targets() []target {
	return []target{
		b.loopbackTarget(), b.wanTarget(), b.lossyTarget(), b.assembleTarget(),
		b.warmTarget(), b.rssTarget(), b.lsTarget(),
	}
}

// find returns the row of tool in scenario; the floor's row is found as "floor", without
// the parallelism its name carries.
func (b *bench) find(scenario, tool string) (row, bool) {
	for _, r := range b.rows {
		if r.scenario == scenario && (r.tool == tool || strings.HasPrefix(r.tool, tool+" (")) {
			return r, true
		}
	}
	return row{}, false
}

// other is the time of another tool's row in a scenario, or, in why, the reason there is
// none to compare dls with: the tool was not run, or failed.
func (b *bench) other(scenario, tool string) (elapsed time.Duration, why string) {
	r, ok := b.find(scenario, tool)
	switch {
	case !ok && tool == "crane pull":
		return 0, "no crane figure: crane not run (-crane empty or not installed)"
	case !ok:
		return 0, "no " + tool + " figure: not run"
	case r.err != nil:
		return 0, "no " + tool + " figure: it failed: " + shorten(r.err.Error())
	}
	return r.elapsed, ""
}

// dlsRun is the dls fetch+assemble row of a scenario, or a MISS target when dls did not
// complete there (a failed dls run is a miss, not a missing figure).
func (b *bench) dlsRun(scenario, goal string) (row, *target) {
	r, ok := b.find(scenario, "dls fetch+assemble")
	if !ok {
		return r, &target{goal: goal, figure: "dls not run", verdict: noFigure}
	}
	if r.err != nil {
		return r, &target{goal: goal, verdict: miss,
			figure: "dls failed after " + seconds(r.elapsed) + ": " + shorten(r.err.Error())}
	}
	return r, nil
}

func (b *bench) loopbackTarget() target {
	goal := fmt.Sprintf("loopback: cold fetch+assemble ≤ crane pull and ≤ %.2f× floor",
		loopbackVsFloor)
	dls, failed := b.dlsRun("direct", goal)
	if failed != nil {
		return *failed
	}

	crane, whyCrane := b.other("direct", "crane pull")
	floor, whyFloor := b.other("direct", "floor")
	vsCrane, vsFloor := dls.elapsed.Seconds()/crane.Seconds(),
		dls.elapsed.Seconds()/floor.Seconds()
	figure := strings.Join([]string{"dls " + seconds(dls.elapsed),
		ratioText(vsCrane, "crane", crane, whyCrane),
		ratioText(vsFloor, "floor", floor, whyFloor)}, "; ")
	return target{goal: goal, figure: figure, verdict: verdict(
		check{known: whyCrane == "", ok: vsCrane <= 1},
		check{known: whyFloor == "", ok: vsFloor <= loopbackVsFloor})}
}

func (b *bench) wanTarget() target {
	goal := fmt.Sprintf("WAN: fetch+assemble at least %.0f× faster than crane pull",
		wanVsCrane)
	dls, failed := b.dlsRun("wan", goal)
	if failed != nil {
		return *failed
	}

	crane, why := b.other("wan", "crane pull")
	faster := crane.Seconds() / dls.elapsed.Seconds()
	figure := "dls " + seconds(dls.elapsed) + "; " + why
	if why == "" {
		figure = fmt.Sprintf("dls %s; %.2f× faster than crane (%s)", seconds(dls.elapsed),
			faster, seconds(crane))
	}
	return target{goal: goal, figure: figure,
		verdict: verdict(check{known: why == "", ok: faster >= wanVsCrane})}
}

func (b *bench) lossyTarget() target {
	goal := fmt.Sprintf("lossy: completes, moving ≤ %.2f× the unique bytes", lossyBudget)
	dls, failed := b.dlsRun("lossy", goal)
	if failed != nil {
		return *failed
	}
	if dls.failed > 0 {
		return target{goal: goal, verdict: miss,
			figure: fmt.Sprintf("%d images failed", dls.failed)}
	}
	if dls.moved < 0 {
		return target{goal: goal, verdict: noFigure,
			figure: "completed in " + seconds(dls.elapsed) + "; bytes moved not counted"}
	}

	ratio := float64(dls.moved) / float64(b.corpus.uniqueBytes())
	return target{goal: goal, verdict: verdict(check{known: true, ok: ratio <= lossyBudget}),
		figure: fmt.Sprintf("completed in %s; moved %.3f× unique (%s of %s)",
			seconds(dls.elapsed), ratio, human(dls.moved), human(b.corpus.uniqueBytes()))}
}

func (b *bench) assembleTarget() target {
	goal := fmt.Sprintf("assemble ≤ %.1f× cat of the same bytes", assembleVsCatX)
	f := b.fig
	if f.asm == 0 || f.cat == 0 {
		return target{goal: goal, figure: "not measured", verdict: noFigure}
	}

	ratio := f.asm.Seconds() / f.cat.Seconds()
	return target{goal: goal, verdict: verdict(check{known: true, ok: ratio <= assembleVsCatX}),
		figure: fmt.Sprintf("%.2f× (assemble %s, cat %s; medians of %d)", ratio,
			seconds(f.asm), seconds(f.cat), assembleRounds)}
}

func (b *bench) warmTarget() target {
	tags := len(b.corpus.tags)
	goal := fmt.Sprintf("warm re-run: no blob request, one manifest request per tag, < %s",
		warmMax)
	f := b.fig
	if !f.warmDone {
		return target{goal: goal, figure: "not measured", verdict: noFigure}
	}

	return target{goal: goal,
		figure: fmt.Sprintf("%s for %d images; %d blob requests, %d manifest requests for "+
			"%d tags", seconds(f.warm), tags, f.warmBlobReqs, f.warmManifests, tags),
		verdict: verdict(check{known: true, ok: f.warmBlobReqs == 0},
			check{known: true, ok: f.warmManifests == tags},
			check{known: true, ok: f.warm < warmMax})}
}

func (b *bench) rssTarget() target {
	goal := fmt.Sprintf("peak RSS < %d MB, small and full list, fetch and assemble",
		rssMax/1_000_000)
	full, ok := b.find("direct", "dls fetch")
	fullAsm, okAsm := b.find("direct", "dls assemble")
	f := b.fig
	if !ok || !okAsm || !f.smallDone {
		return target{goal: goal, figure: "not measured", verdict: noFigure}
	}

	var checks []check
	var parts []string
	for _, m := range []struct {
		what string
		rss  int64
	}{
		{fmt.Sprintf("small list (%d images) fetch", b.cfg.smallImages), f.smallFetchRSS},
		{"assemble", f.smallAsmRSS},
		{fmt.Sprintf("full list (%d images) fetch", len(b.corpus.tags)), full.maxRSS},
		{"assemble", fullAsm.maxRSS},
	} {
		checks = append(checks, check{known: m.rss > 0, ok: m.rss < rssMax})
		parts = append(parts, m.what+" "+rssText(m.rss))
	}
	figure := strings.Join(parts, ", ")
	if !haveGNUTime() {
		figure = noRSS
	}
	return target{goal: goal, figure: figure, verdict: verdict(checks...)}
}

func (b *bench) lsTarget() target {
	goal := fmt.Sprintf("dls ls on a %d-image cache < %s", targetLsImages, lsMax)
	f := b.fig
	if f.ls == 0 {
		return target{goal: goal, figure: "not measured", verdict: noFigure}
	}
	return target{goal: goal, verdict: verdict(check{known: true, ok: f.ls < lsMax}),
		figure: fmt.Sprintf("%s on %d images (ls --json %s)", millis(f.ls), f.lsImages,
			millis(f.lsJSON))}
}

// writeTargets writes the targets table, after a warning when the run is smaller than
// the scale the targets are set for, whose verdicts then do not show them met.
func (b *bench) writeTargets(w io.Writer) {
	fmt.Fprintf(w, "## Targets\n\n")
	var small []string
	if n := len(b.corpus.tags); n < targetImages {
		small = append(small, fmt.Sprintf("%d images (target scale %d)", n, targetImages))
	}
	if u := b.corpus.uniqueBytes(); u < targetSize*9/10 {
		small = append(small, fmt.Sprintf("%s of blobs (target scale 2 GB)", human(u)))
	}
	if b.fig.lsImages < targetLsImages {
		small = append(small, fmt.Sprintf("an ls cache of %d images (target scale %d)",
			b.fig.lsImages, targetLsImages))
	}
	if len(small) > 0 {
		fmt.Fprintf(w, "This run is smaller than the targets are set for: %s. Its verdicts "+
			"are indicative only.\n\n", strings.Join(small, ", "))
	}

	fmt.Fprintf(w, "| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range b.targets() {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.goal, t.figure, t.verdict)
	}
	fmt.Fprintln(w)
}

// ratioText is "0.85× crane (1.20 s)" or the reason there is no ratio.
func ratioText(ratio float64, what string, d time.Duration, why string) string {
	if why != "" {
		return why
	}
	return fmt.Sprintf("%.2f× %s (%s)", ratio, what, seconds(d))
}

// rssText is a peak RSS for the report, or why there is none.
func rssText(n int64) string {
	if n <= 0 {
		return "not measured"
	}
	return human(n)
}

// millis formats d in milliseconds, the scale of the ls target.
func millis(d time.Duration) string { return fmt.Sprintf("%.0f ms", d.Seconds()*1000) }
