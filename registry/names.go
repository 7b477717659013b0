package registry

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// The spec's grammar for repository names and tags.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLen bounds a repository name (with the registry's host name, the
// spec suggests 255 characters).
const maxNameLen = 255

// ValidName reports whether name is a repository name the spec allows:
// lowercase components of letters and digits joined by '.', '_', '__' or
// dashes, separated by '/'. Such a name has no "..", no empty component
// and no component that is a dot or starts with '_', so it is safe as a
// relative path.
func ValidName(name string) bool {
	return len(name) <= maxNameLen && nameRE.MatchString(name)
}

// ValidTag reports whether tag is a tag the spec allows.
func ValidTag(tag string) bool { return tagRE.MatchString(tag) }

var errBadRange = errors.New("malformed Content-Range")

// ParseContentRange parses a chunk's Content-Range, "<start>-<end>" with
// both ends inclusive (a "bytes " or "bytes=" prefix is tolerated), and
// returns start and the chunk's length.
func ParseContentRange(s string) (start, length int64, err error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	a, b, ok := strings.Cut(s, "-")
	if !ok || a == "" || b == "" || a[0] == '+' || b[0] == '+' {
		return 0, 0, errBadRange
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || end == 1<<63-1 {
		return 0, 0, errBadRange
	}
	return start, end - start + 1, nil
}
