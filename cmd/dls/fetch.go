package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/distribution/reference"
	"github.com/dustin/go-humanize"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/registry"
	"github.com/dlsproject/dls/resume"
)

type fetchCmd struct {
	Lists       []string      `arg:"" optional:"" name:"LIST" help:"${fetch_lists_help}"`
	Image       []string      `help:"An image reference to fetch (repeatable)." placeholder:"REF"`
	Platform    []string      `help:"${platform_help}" default:"linux/amd64" placeholder:"OS/ARCH"`
	Registries  string        `help:"${registries_help}" type:"existingfile" placeholder:"FILE"`
	Concurrency int           `help:"Blobs to download at once." default:"6"`
	PerRegistry int           `help:"${per_registry_help}" default:"0"`
	Retries     int           `help:"Retries of a failed request; 0: none." default:"5"`
	MaxWait     time.Duration `help:"${max_wait_help}" default:"2m"`
	IdleTimeout time.Duration `help:"${idle_timeout_help}" default:"30s"`
	Attest      bool          `name:"keep-attestations" help:"${keep_attestations_help}"`
	JSON        bool          `name:"json" help:"Print the summary as JSON."`
}

// Validate refuses flag values that would fetch nothing or mean something they do not say:
// no download slot, a negative limit or retry count, a wait or timeout of zero, a platform
// that does not parse. kong runs it while parsing, so these exit 2 like any bad flag, and
// before a list is read or the cache is created.
func (c *fetchCmd) Validate() error {
	_, err := parsePlatforms(c.Platform)
	if err != nil {
		return err
	}

	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: give 1 or more blobs at once", c.Concurrency)
	case c.PerRegistry < 0:
		return fmt.Errorf("--per-registry %d: give 0 (no limit) or more", c.PerRegistry)
	case c.Retries < 0:
		return fmt.Errorf("--retries %d: give 0 (none) or more", c.Retries)
	case c.MaxWait <= 0:
		return fmt.Errorf("--max-wait %s: give a positive duration, e.g. 2m", c.MaxWait)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("--idle-timeout %s: give a positive duration, e.g. 30s",
			c.IdleTimeout)
	}
	return nil
}

// errIncomplete says a fetch ran but some images were not fetched; each was already named.
var errIncomplete = errors.New("not every image was fetched")

func (c *fetchCmd) Run(ctx context.Context, e *env) error {
	refs, err := readReferences(e.stdin, c.Lists, c.Image)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return errNoImages(c.Lists)
	}

	plats, err := parsePlatforms(c.Platform)
	if err != nil {
		return err
	}

	client, err := c.newClient(e)
	if err != nil {
		return err
	}

	store, err := cache.Open(e.cacheDir, cache.Options{Logger: e.log})
	if err != nil {
		return err
	}
	defer store.Close()

	return c.fetch(ctx, e, client, store, refs, plats)
}

func (c *fetchCmd) newClient(e *env) (*registry.Client, error) {
	var cfg *registry.RegistriesConfig
	if c.Registries != "" {
		var err error
		cfg, err = registry.LoadRegistriesConfig(c.Registries)
		if err != nil {
			return nil, err
		}
		if cfg.Ignored != "" {
			e.log.Warn("registries config has a key dls does not know; it is ignored, as k3s "+
				"ignores it: check its spelling", "file", c.Registries, "key", cfg.Ignored)
		}
	}

	return registry.NewClient(registry.Options{
		Config:       cfg,
		Logger:       e.log,
		RetryMax:     retryMax(c.Retries),
		RetryWaitMax: c.MaxWait,
		MaxPerHost:   c.PerRegistry,
		IdleTimeout:  c.IdleTimeout,
		UserAgent:    "dls/" + version,
	})
}

// fetch resolves and transfers refs, then prints the summary. Interrupted or not, what was
// fetched stays in the cache and partial blobs are kept for the next run.
func (c *fetchCmd) fetch(ctx context.Context, e *env, client *registry.Client,
	store *cache.Cache, refs []reference.Named, plats []ocispec.Platform) error {
	start := time.Now()
	progress := newProgress(e)
	defer progress.Stop()

	f := resume.New(client, store, resume.Options{
		Platforms:   plats,
		Concurrency: c.Concurrency,
		Logger:      e.log,
		Observer:    progress,

		KeepAttestations: c.Attest,
	})

	e.log.Info("resolving images", "count", len(refs))
	plan, err := f.Resolve(ctx, refs)
	if err != nil {
		return err
	}

	e.log.Info("downloading blobs", "images", len(plan.Images))
	transferErr := f.Transfer(ctx, plan)
	progress.Stop()

	// The summary is printed even when interrupted: it says what is already in the cache.
	stats := f.Stats(plan, time.Since(start))
	if err := c.printSummary(e.stdout, stats, plan); err != nil {
		return err
	}
	if transferErr != nil {
		return transferErr
	}
	if len(plan.Failed) > 0 {
		return fmt.Errorf("%w: %d of %d images failed (see above); fix what an error names "+
			"(a name, a platform, a login), or run the same command again after a network "+
			"fault; nothing fetched is lost", errIncomplete, len(plan.Failed), stats.Images)
	}
	return nil
}

// retryMax maps --retries to registry.Options.RetryMax, where 0 means the default and a
// negative value none: on the command line 0 means none.
func retryMax(flag int) int {
	if flag <= 0 {
		return -1
	}
	return flag
}

// jsonSummary is the --json output: the figures and each failed image with its error.
type jsonSummary struct {
	resume.Stats
	Failed   []jsonFailure  `json:"failed"`
	TagMoved []jsonTagMoved `json:"tag_moved"`
}

// jsonTagMoved is a name:tag@digest image whose tag points at other content.
type jsonTagMoved struct {
	Image     string `json:"image"`
	TagDigest string `json:"tag_digest"`
}

type jsonFailure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

func (c *fetchCmd) printSummary(w io.Writer, s resume.Stats, plan *resume.Plan) error {
	if c.JSON {
		out := jsonSummary{Stats: s, Failed: []jsonFailure{}, TagMoved: []jsonTagMoved{}}
		for _, f := range plan.Failed {
			out.Failed = append(out.Failed, jsonFailure{Image: f.Ref, Error: f.Err.Error()})
		}
		for _, pi := range plan.Images {
			if pi.MovedTag != "" {
				out.TagMoved = append(out.TagMoved, jsonTagMoved{Image: pi.Image.Name,
					TagDigest: pi.MovedTag.String()})
			}
		}
		return json.NewEncoder(w).Encode(out)
	}

	_, err := fmt.Fprintf(w, "images:     %d fetched, %d failed\n"+
		"blobs:      %d (%d downloaded, %d reused from the cache)\n"+
		"downloaded: %s (%s resumed from earlier runs)\n"+
		"reused:     %s\n"+
		"retries:    %d (waited %s)\n"+
		"time:       %s\n",
		s.Images-s.ImagesFailed, s.ImagesFailed,
		s.Blobs, s.BlobsDownloaded, s.BlobsReused,
		humanBytes(s.BytesDownloaded), humanBytes(s.BytesResumed),
		humanBytes(s.BytesReused),
		s.Retries, s.Waited.Round(time.Millisecond),
		s.Elapsed.Round(time.Millisecond))
	if err != nil {
		return err
	}
	for _, f := range plan.Failed {
		if _, err := fmt.Fprintf(w, "failed:     %s\n", f.Ref); err != nil {
			return err
		}
	}
	for _, pi := range plan.Images {
		if pi.MovedTag == "" {
			continue
		}
		_, err := fmt.Fprintf(w, "pinned:     %s (its tag now points at %s; the pinned "+
			"digest was fetched)\n", pi.Image.Name, pi.MovedTag)
		if err != nil {
			return err
		}
	}
	return nil
}

// parsePlatforms parses each --platform value, failing on the first that does not parse.
func parsePlatforms(specs []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, s := range specs {
		p, err := resume.ParsePlatform(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// humanBytes formats a byte count in binary units, e.g. "12 MiB".
func humanBytes(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}
