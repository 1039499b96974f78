package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// emit writes a command's result to w: v as one JSON document when asJSON, else the text
// that text writes. Results go to standard output, logs to standard error.
func emit(w io.Writer, asJSON bool, v any, text func(io.Writer) error) error {
	var err error
	if asJSON {
		err = json.NewEncoder(w).Encode(v)
	} else {
		err = text(w)
	}
	if err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}
