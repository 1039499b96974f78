package registry

import "strings"

// challenge is one WWW-Authenticate challenge: a lowercased scheme ("bearer", "basic")
// and its parameters, names lowercased, values unquoted.
type challenge struct {
	scheme string
	params map[string]string
}

// parseChallenges reads every challenge of every WWW-Authenticate value (RFC 9110 11.6.1):
// several challenges may share one header, quoted values may hold commas and escaped
// quotes. Token68 credentials are not used by registries and are skipped.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		p := headerParser{s: v}
		first := len(out)
		for {
			p.skip(" \t,")
			if p.done() {
				break
			}
			tok := p.token()
			if tok == "" {
				p.i++ // not a token character: skip it rather than loop
				continue
			}

			p.skip(" \t")
			if !p.done() && p.s[p.i] == '=' {
				p.i++
				p.skip(" \t")
				val := p.value()
				if len(out) > first {
					out[len(out)-1].params[strings.ToLower(tok)] = val
				}
				continue
			}
			out = append(out, challenge{scheme: strings.ToLower(tok), params: map[string]string{}})
		}
	}
	return out
}

// findChallenge returns the first challenge of scheme, or nil.
func findChallenge(cs []challenge, scheme string) *challenge {
	for i := range cs {
		if cs[i].scheme == scheme {
			return &cs[i]
		}
	}
	return nil
}

// headerParser walks one header value.
type headerParser struct {
	s string
	i int
}

func (p *headerParser) done() bool { return p.i >= len(p.s) }

// skip advances over any of chars.
func (p *headerParser) skip(chars string) {
	for !p.done() && strings.IndexByte(chars, p.s[p.i]) >= 0 {
		p.i++
	}
}

// token reads an RFC 9110 token, possibly empty.
func (p *headerParser) token() string {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a quoted string (unescaping \x) or a token.
func (p *headerParser) value() string {
	if p.done() || p.s[p.i] != '"' {
		return p.token()
	}

	var b strings.Builder
	for p.i++; !p.done(); p.i++ {
		switch c := p.s[p.i]; c {
		case '\\':
			if p.i+1 < len(p.s) {
				p.i++
				b.WriteByte(p.s[p.i])
			}
		case '"':
			p.i++
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String() // unterminated: take what there is
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
