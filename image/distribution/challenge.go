package distribution

import (
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate
// header: a scheme ("basic", "bearer", lower-cased) and its parameters
// (names lower-cased).
type Challenge struct {
	Scheme string
	Params map[string]string
}

// ParseChallenges parses WWW-Authenticate header values (RFC 9110 section
// 11.6.1): each holds one or more challenges, a scheme followed by
// comma-separated name=value parameters, values plain tokens or quoted
// strings. What does not parse is skipped.
func ParseChallenges(headers []string) []Challenge {
	var out []Challenge
	for _, h := range headers {
		p := parser{s: h}
		for {
			p.skip(" \t,")
			scheme := p.token()
			if scheme == "" {
				if p.done() {
					break
				}
				p.i++ // an unexpected byte: skip it
				continue
			}
			c := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
			for {
				p.skip(" \t")
				save := p.i
				name := p.token()
				p.skip(" \t")
				if name == "" || !p.eat('=') {
					p.i = save
					break
				}
				p.skip(" \t")
				var v string
				if p.peek() == '"' {
					v = p.quoted()
				} else {
					v = p.token()
				}
				c.Params[strings.ToLower(name)] = v
				p.skip(" \t")
				if !p.eat(',') {
					break
				}
			}
			out = append(out, c)
			if p.done() {
				break
			}
		}
	}
	return out
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *parser) skip(set string) {
	for !p.done() && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

// isTokenChar: RFC 9110 tchar, plus '/' for token68 values.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/:", c) >= 0
}

func (p *parser) token() string {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted string, undoing backslash escapes; an unclosed
// one runs to the end.
func (p *parser) quoted() string {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if !p.done() {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
