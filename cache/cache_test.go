package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadOnlyOpenOfAnEmptyIndexSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	_, err := Open(dir, Options{ReadOnly: true})

	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
	if want := "index.db is empty (the first fetch into it was interrupted); run dls " +
		"fetch to initialise it"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
}
