package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"

	"github.com/dlsproject/dls/registry"
)

// errBadInput marks an error in what the user gave (a list, a reference): the command
// exits 2 for it, as for a bad flag, so scripts can tell it from "not ready" or "failed".
var errBadInput = errors.New("cannot use the image lists")

// readReferences gathers the references of every list (a file, or "-" for stdin) and of
// every --image flag, in that order, without duplicates. The invalid lines of every list
// are reported, each with its file and line number (the first 20 of a list, then a count),
// before anything is fetched; a list that is not text is reported as one error.
func readReferences(stdin io.Reader, lists, images []string) ([]reference.Named, error) {
	var (
		refs []reference.Named
		errs []error
	)
	for _, list := range lists {
		got, err := readList(stdin, list)
		refs = append(refs, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}

	for _, image := range images {
		ref, err := registry.ParseReference(image)
		if err != nil {
			errs = append(errs, fmt.Errorf("--image %q: %w", image, err))
			continue
		}
		refs = append(refs, ref)
	}

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w; fix these and run again:\n%w", errBadInput, err)
	}
	return dedupe(refs), nil
}

func readList(stdin io.Reader, list string) ([]reference.Named, error) {
	if list == "-" {
		return registry.ParseList(stdin, "<stdin>")
	}

	f, err := os.Open(list)
	if err != nil {
		return nil, fmt.Errorf("open image list: %w", err)
	}
	defer f.Close()
	return registry.ParseList(f, list)
}

// errNoImages says that lists, which name nothing but blank lines and comments, give no
// image to work on.
func errNoImages(lists []string) error {
	if len(lists) == 0 {
		return fmt.Errorf("%w: no images given; give an image list or --image REF", errBadInput)
	}

	named := make([]string, len(lists))
	for i, list := range lists {
		named[i] = list
		if list == "-" {
			named[i] = "standard input"
		}
	}
	verb := "names"
	if len(lists) > 1 {
		verb = "name"
	}
	return fmt.Errorf("%w: %s %s no image, only blank lines and comments; give a list "+
		"with images, or --image REF", errBadInput, strings.Join(named, ", "), verb)
}

// dedupe drops repeated references, keeping the first.
func dedupe(refs []reference.Named) []reference.Named {
	seen := map[string]bool{}
	out := refs[:0]
	for _, ref := range refs {
		if seen[ref.String()] {
			continue
		}
		seen[ref.String()] = true
		out = append(out, ref)
	}
	return out
}

// listedNames returns the normalised names of the images of lists and --image flags, or nil
// when none of either was given, which commands take as "every cached image". Lists that
// name no image at all are bad input: an empty file is far more likely a mistake (a failed
// download of the list, a wrong file) than a wish to act on every image, or on none.
func listedNames(stdin io.Reader, lists, images []string) ([]string, error) {
	if len(lists) == 0 && len(images) == 0 {
		return nil, nil
	}

	refs, err := readReferences(stdin, lists, images)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, errNoImages(lists)
	}

	names := make([]string, 0, len(refs))
	for _, ref := range refs {
		names = append(names, ref.String())
	}

	return names, nil
}
