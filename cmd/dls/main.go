// Command dls packages container images for air-gapped Kubernetes without a Docker daemon:
// "dls fetch" fills a cache directory from registries, "dls assemble" writes a docker-save
// archive from it, offline.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit statuses: a command that ran but did not do all it was asked, and one stopped by
// SIGINT or SIGTERM (128 + SIGINT, as shells report it).
const (
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// cli is the command line. Global flags apply to every command.
type cli struct {
	Cache    string           `help:"Cache directory." default:"dls-cache" env:"DLS_CACHE" type:"path"`
	LogLevel string           `help:"${log_level_help}" default:"info" enum:"debug,info,warn,error"`
	Version  kong.VersionFlag `help:"Print the version and exit."`

	Fetch    fetchCmd    `cmd:"" help:"Fetch the images of LISTs into the cache."`
	Assemble assembleCmd `cmd:"" help:"Write a docker-save archive from cached images."`
	Ls       lsCmd       `cmd:"" aliases:"status" help:"${ls_help}"`
	Verify   verifyCmd   `cmd:"" help:"${verify_help}"`
	Prune    pruneCmd    `cmd:"" help:"${prune_help}"`
	Merge    mergeCmd    `cmd:"" help:"Copy the images and blobs of other caches into --cache."`
	Inspect  inspectCmd  `cmd:"" help:"${inspect_help}"`
}

// env is what every command receives: where results and logs go, and the global flags.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	log      *slog.Logger
	cacheDir string
	// isTerminal reports whether stderr is a terminal, for progress bars.
	isTerminal bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run parses args, runs the command and returns the process exit status. Only here does an
// error become a status; commands return errors.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	kctx, code, ok := parse(&c, args, stdout, stderr)
	if !ok {
		return code
	}

	ctx, stop := signalContext()
	defer stop()

	e := &env{
		stdin:      stdin,
		stdout:     stdout,
		stderr:     stderr,
		log:        newLogger(stderr, c.LogLevel),
		cacheDir:   c.Cache,
		isTerminal: isTerminal(stderr),
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	err := kctx.Run(e)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "dls %s: interrupted%s\n", kctx.Selected().Name,
			interruptNote(kctx.Selected().Name))
		return exitStatusOf(context.Cause(ctx))
	case errors.Is(err, errBadInput):
		fmt.Fprintf(stderr, "dls: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "dls: %v\n", err)
		return exitFailure
	}
}

// parse reads args into c. ok is false when there is nothing to run: kong answered on its
// own (--help, --version; code 0) or the arguments are wrong (code exitUsage).
func parse(c *cli, args []string, stdout, stderr io.Writer) (kctx *kong.Context, code int,
	ok bool) {
	// exited is set when kong has answered on its own: the parse error that may follow is
	// then not the user's.
	exited := false
	parser, err := kong.New(c,
		kong.Name("dls"),
		kong.Description("Package container images for air-gapped Kubernetes, no Docker "+
			"daemon needed."),
		kong.Vars{"version": version}.CloneWith(helpTexts),
		kong.Writers(stdout, stderr),
		kong.Exit(func(int) { exited = true }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintf(stderr, "dls: %v\n", err)
		return nil, exitFailure, false
	}

	kctx, err = parser.Parse(args)
	switch {
	case exited:
		return nil, 0, false
	case err != nil:
		fmt.Fprintf(stderr, "dls: %v\n", err)
		return nil, exitUsage, false
	case kctx.Command() == "":
		return nil, 0, false
	}
	return kctx, 0, true
}

// signalContext returns a context cancelled by SIGINT or SIGTERM, with the signal as its
// cause, and a function that stops listening.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-signals:
			cancel(signalError{sig.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		cancel(nil)
	}
}

// signalError is the cause of a context cancelled by a signal.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return "received " + e.sig.String() }

// exitStatusOf is 128 plus the signal number, as shells report a process a signal ended:
// 130 for SIGINT, 143 for SIGTERM.
func exitStatusOf(cause error) int {
	var se signalError
	if errors.As(cause, &se) {
		return 128 + int(se.sig)
	}
	return exitInterrupted
}

// interruptNote tells what an interrupted command leaves behind.
func interruptNote(command string) string {
	switch command {
	case "fetch":
		return "; partial downloads are kept, run the same command to continue"
	case "assemble":
		return "; no archive was written"
	case "merge", "prune":
		return "; the cache is consistent, run dls verify to check it"
	}
	return ""
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// isTerminal reports whether w is a terminal that can draw progress bars: one that reports
// a width (a pty without a window size draws nothing, so it gets log lines instead).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}
