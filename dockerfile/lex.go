package dockerfile

import (
	"fmt"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// Lookup returns a variable's value and whether it is set.
type Lookup func(name string) (string, bool)

// MapLookup looks names up in a map.
func MapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// ExpansionError is a failed variable expansion.
type ExpansionError struct{ Msg string }

func (e *ExpansionError) Error() string { return e.Msg }

// Is makes every ExpansionError an errdefs.ErrInvalid.
func (e *ExpansionError) Is(target error) bool { return target == errdefs.ErrInvalid }

// maxExpansion bounds an expanded word, so nested defaults cannot blow up.
const maxExpansion = 1 << 20

// Expand processes one word as Docker does for the instructions that take
// variables (ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
// WORKDIR, ARG): quotes are removed ('…' literally, "…" with expansion),
// the escape token escapes the next character, and $NAME, ${NAME},
// ${NAME:-word}, ${NAME-word}, ${NAME:+word}, ${NAME+word}, ${NAME:?msg}
// and ${NAME?msg} expand from env.
func Expand(word string, env Lookup, escape rune) (string, error) {
	l := &lexer{src: []rune(word), env: env, escape: escape}
	out, _, err := l.process(0)
	return out, err
}

type lexer struct {
	src    []rune
	pos    int
	env    Lookup
	escape rune
	depth  int // nesting of ${…} words
}

// maxNesting bounds ${A:-${B:-…}} nesting.
const maxNesting = 64

func (l *lexer) peek() rune {
	if l.pos >= len(l.src) {
		return -1
	}
	return l.src[l.pos]
}

func (l *lexer) next() rune {
	c := l.peek()
	if c >= 0 {
		l.pos++
	}
	return c
}

func expansionErr(format string, args ...any) error {
	return &ExpansionError{Msg: fmt.Sprintf(format, args...)}
}

// process reads until stop (0: the end) outside quotes; it reports whether
// stop was found.
func (l *lexer) process(stop rune) (string, bool, error) {
	var b strings.Builder
	for {
		if b.Len() > maxExpansion {
			return "", false, expansionErr("expanded word longer than %d bytes", maxExpansion)
		}
		c := l.next()
		switch {
		case c < 0:
			return b.String(), false, nil
		case stop != 0 && c == stop:
			return b.String(), true, nil
		case c == l.escape:
			if n := l.next(); n >= 0 {
				b.WriteRune(n)
			}
		case c == '\'':
			s, err := l.singleQuoted()
			if err != nil {
				return "", false, err
			}
			b.WriteString(s)
		case c == '"':
			s, err := l.doubleQuoted()
			if err != nil {
				return "", false, err
			}
			b.WriteString(s)
		case c == '$':
			s, err := l.variable()
			if err != nil {
				return "", false, err
			}
			b.WriteString(s)
		default:
			b.WriteRune(c)
		}
	}
}

func (l *lexer) singleQuoted() (string, error) {
	var b strings.Builder
	for {
		c := l.next()
		switch c {
		case -1:
			return "", expansionErr("unexpected end of statement while looking for matching single-quote")
		case '\'':
			return b.String(), nil
		}
		b.WriteRune(c)
	}
}

func (l *lexer) doubleQuoted() (string, error) {
	var b strings.Builder
	for {
		if b.Len() > maxExpansion {
			return "", expansionErr("expanded word longer than %d bytes", maxExpansion)
		}
		c := l.next()
		switch {
		case c < 0:
			return "", expansionErr("unexpected end of statement while looking for matching double-quote")
		case c == '"':
			return b.String(), nil
		case c == '$':
			s, err := l.variable()
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		case c == l.escape:
			switch n := l.peek(); n {
			case '"', '$', l.escape:
				b.WriteRune(l.next())
			default:
				b.WriteRune(c)
			}
		default:
			b.WriteRune(c)
		}
	}
}

func isNameStart(c rune) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c rune) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func (l *lexer) name() string {
	start := l.pos
	for isNameChar(l.peek()) {
		l.pos++
	}
	return string(l.src[start:l.pos])
}

// variable expands what follows a '$'.
func (l *lexer) variable() (string, error) {
	c := l.peek()
	if isNameStart(c) {
		v, _ := l.env(l.name())
		return v, nil
	}
	if c != '{' {
		return "$", nil // a lone '$' stays
	}
	l.next()
	name := l.name()
	if name == "" {
		return "", expansionErr("bad substitution")
	}
	value, set := l.env(name)
	op := l.next()
	if op == '}' {
		return value, nil
	}
	colon := op == ':'
	if colon {
		op = l.next()
	}
	switch op {
	case '-', '+', '?':
	case -1:
		return "", expansionErr("syntax error: missing '}'")
	default:
		if colon {
			return "", expansionErr("unsupported modifier (%c) in substitution", op)
		}
		return "", expansionErr("missing ':' in substitution")
	}
	if l.depth >= maxNesting {
		return "", expansionErr("substitutions nested deeper than %d", maxNesting)
	}
	l.depth++
	word, found, err := l.process('}')
	l.depth--
	if err != nil {
		return "", err
	}
	if !found {
		return "", expansionErr("syntax error: missing '}'")
	}
	present := set && (!colon || value != "")
	switch op {
	case '-':
		if present {
			return value, nil
		}
		return word, nil
	case '+':
		if present {
			return word, nil
		}
		return "", nil
	default: // '?'
		if present {
			return value, nil
		}
		if word == "" {
			word = "parameter null or not set"
		}
		return "", expansionErr("%s: %s", name, word)
	}
}
