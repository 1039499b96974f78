package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

const (
	// maxListLine caps the reference part of an image-list line. No reference comes near
	// it (distribution caps a name at 255 bytes and a tag at 128), so a longer line is a
	// file that is not an image list.
	maxListLine = 4096
	// maxQuoted caps how much of a bad input an error message quotes.
	maxQuoted = 80
	// maxListErrors caps the invalid lines of one list reported one by one; the rest are
	// only counted. A file that is no image list would otherwise report each of its lines.
	maxListErrors = 20
)

// utf8BOM is the byte order mark some Windows editors put at the start of a text file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// UTF-16 byte order marks, little and big endian: Windows PowerShell 5 writes UTF-16LE
// text with its mark when output is redirected to a file.
var (
	utf16LEBOM = []byte{0xFF, 0xFE}
	utf16BEBOM = []byte{0xFE, 0xFF}
)

// listLine is one line of an image list, without its line ending.
type listLine struct {
	text []byte // the line, or its first maxListLine+1 bytes when it is longer
	size int    // the whole line's length in bytes
	nul  bool   // whether the whole line, also past text, holds a NUL byte
}

// readListLine reads the next line of any length from r, keeping at most maxListLine+1
// bytes of it, so a huge line costs no memory yet is still measured. A "\n" or "\r\n"
// ending is dropped. It returns io.EOF only when nothing was left to read.
func readListLine(r *bufio.Reader) (listLine, error) {
	var l listLine
	var tail []byte // the line's last two bytes so far, to find its ending
	for {
		chunk, err := r.ReadSlice('\n')
		l.size += len(chunk)
		l.nul = l.nul || bytes.IndexByte(chunk, 0) >= 0
		if keep := maxListLine + 1 - len(l.text); keep > 0 {
			l.text = append(l.text, chunk[:min(keep, len(chunk))]...)
		}
		tail = append(tail, chunk[max(0, len(chunk)-2):]...)
		tail = tail[max(0, len(tail)-2):]

		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && (!errors.Is(err, io.EOF) || l.size == 0):
			return listLine{}, err
		}

		if bytes.HasSuffix(tail, []byte("\n")) {
			l.size--
			if bytes.HasSuffix(tail, []byte("\r\n")) {
				l.size--
			}
		}
		l.text = l.text[:min(len(l.text), l.size)]
		return l, nil
	}
}

// checkTextFile fails when line shows that the whole list is not text: it holds a NUL
// byte, which no text file does and nearly every binary, compressed or archive file does
// within its first lines, or it is the first and starts with a UTF-16 byte order mark. The
// caller then reports only this, not each of the file's lines.
func checkTextFile(line listLine, first bool, source string) error {
	utf16 := bytes.HasPrefix(line.text, utf16LEBOM) || bytes.HasPrefix(line.text, utf16BEBOM)
	if first && utf16 {
		return fmt.Errorf("%s is UTF-16 text (it starts with a UTF-16 byte order mark); "+
			"save it as UTF-8, with one image reference per line", source)
	}
	if line.nul {
		return fmt.Errorf("%s is not a text image list (it holds NUL bytes); give a file "+
			"with one image reference per line", source)
	}

	return nil
}

// checkText refuses bytes that cannot be part of a text list: invalid UTF-8 or control
// characters other than tab, as in a binary or compressed file passed by mistake.
func checkText(b []byte) error {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && n == 1) || (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("not text (byte %d is %#x): %s; is this an image list?",
				i+1, b[i], quoteShort(string(b)))
		}
		i += n
	}
	return nil
}

// quoteShort quotes s for an error message, cut to its first maxQuoted bytes (at a
// character boundary) with the full length named, so junk input cannot flood the output.
func quoteShort(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}
