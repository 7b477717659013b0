package reference

import (
	"strings"

	"github.com/opencontainers/go-digest"
)

// A hand-written recognizer of the grammar in doc.go: linear in the input,
// no regular expressions, no allocation beyond the result.

// parse splits s into name, tag and digest and checks each against the
// grammar. It does not validate the digest's algorithm or length.
func parse(s string) (Reference, bool) {
	var ref Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d := rest[i+1:]
		if !isDigest(d) {
			return Reference{}, false
		}
		ref.digest = digest.Digest(d)
		rest = rest[:i]
	}
	// A tag follows the last ':' after the last '/'; a ':' before a '/'
	// is a port.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		t := rest[i+1:]
		if !isTag(t) {
			return Reference{}, false
		}
		ref.tag = t
		rest = rest[:i]
	}
	domain, path, ok := splitName(rest)
	if !ok {
		return Reference{}, false
	}
	ref.domain, ref.path = domain, path
	return ref, true
}

// splitName checks a name and splits off its domain: the first of two or
// more components when it is a valid domain.
func splitName(name string) (domain, path string, ok bool) {
	if i := strings.IndexByte(name, '/'); i >= 0 && isDomain(name[:i]) {
		if isPath(name[i+1:]) {
			return name[:i], name[i+1:], true
		}
		return "", "", false
	}
	if isPath(name) {
		return "", name, true
	}
	return "", "", false
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

func isWord(c byte) bool { return isAlnum(c) || c == '_' }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// isPath: path-component ['/' path-component]*.
func isPath(s string) bool {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return isPathComponent(s)
		}
		if !isPathComponent(s[:i]) {
			return false
		}
		s = s[i+1:]
	}
}

// isPathComponent: alpha-numeric [separator alpha-numeric]* with separator
// one of ".", "_", "__" or one or more "-".
func isPathComponent(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); {
		if isLowerAlnum(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && !isLowerAlnum(s[j]) {
			j++
		}
		if !isSeparator(s[i:j]) {
			return false
		}
		i = j
	}
	return true
}

func isSeparator(s string) bool {
	switch s {
	case ".", "_", "__":
		return true
	}
	return strings.Trim(s, "-") == ""
}

// isDomain: host [':' port-number].
func isDomain(s string) bool {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		inner := s[1:end]
		if inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:") != "" {
			return false
		}
		rest := s[end+1:]
		if rest == "" {
			return true
		}
		return rest[0] == ':' && isPort(rest[1:])
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		if !isPort(s[i+1:]) {
			return false
		}
		host = s[:i]
	}
	for {
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return isDomainComponent(host)
		}
		if !isDomainComponent(host[:i]) {
			return false
		}
		host = host[i+1:]
	}
}

func isPort(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isDomainComponent: an alphanumeric, or alphanumerics and '-' that start
// and end with an alphanumeric.
func isDomainComponent(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// isTag: [\w][\w.-]{0,127}.
func isTag(s string) bool {
	if s == "" || len(s) > TagLengthMax || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// isDigest: algorithm ':' hex, the algorithm made of [A-Za-z][A-Za-z0-9]*
// components joined by one of "-_+.", the hex at least 32 digits.
func isDigest(s string) bool {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return false
	}
	alg, hex := s[:i], s[i+1:]
	if len(hex) < 32 {
		return false
	}
	for j := 0; j < len(hex); j++ {
		if !isHex(hex[j]) {
			return false
		}
	}
	startOfComponent := true
	for j := 0; j < len(alg); j++ {
		c := alg[j]
		switch {
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			startOfComponent = false
		case c >= '0' && c <= '9':
			if startOfComponent {
				return false
			}
		case c == '-' || c == '_' || c == '+' || c == '.':
			if startOfComponent {
				return false
			}
			startOfComponent = true
		default:
			return false
		}
	}
	return alg != "" && !startOfComponent
}

// isIdentifier: 64 lowercase hex digits, an image ID.
func isIdentifier(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
