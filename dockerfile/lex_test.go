package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestExpand(t *testing.T) {
	env := MapLookup(map[string]string{"A": "a", "EMPTY": "", "PATH": "/bin", "SP": "x y"})
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"$A", "a"},
		{"${A}b", "ab"},
		{"$Ab", ""},
		{"pre$A-post", "prea-post"},
		{"${UNSET:-def}", "def"},
		{"${EMPTY:-def}", "def"},
		{"${EMPTY-def}", ""},
		{"${UNSET-def}", "def"},
		{"${A:-def}", "a"},
		{"${A:+alt}", "alt"},
		{"${EMPTY:+alt}", ""},
		{"${EMPTY+alt}", "alt"},
		{"${UNSET:+alt}", ""},
		{"${UNSET:-${A}x}", "ax"},
		{"${UNSET:-'q}'}", "q}"},
		{"${A:?must}", "a"},
		{"'$A'", "$A"},
		{`"$A"`, "a"},
		{`"${SP}"`, "x y"},
		{`\$A`, "$A"},
		{`"\$A"`, "$A"},
		{`"a\"b"`, `a"b`},
		{`"a\nb"`, `a\nb`},
		{`a\ b`, "a b"},
		{"$", "$"},
		{"$1", "$1"},
		{"a$", "a$"},
		{"${PATH}:/usr/bin", "/bin:/usr/bin"},
		{`\`, ""},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, env, '\\')
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got, err := Expand("`$A c:\\x", env, '`'); err != nil || got != `$A c:\x` {
		t.Errorf("backtick escape: %q %v", got, err)
	}
}

func TestExpandErrors(t *testing.T) {
	env := MapLookup(map[string]string{"EMPTY": ""})
	tests := []struct{ in, want string }{
		{"'open", "unexpected end of statement while looking for matching single-quote"},
		{`"open`, "unexpected end of statement while looking for matching double-quote"},
		{"${A", "syntax error: missing '}'"},
		{"${A:-x", "syntax error: missing '}'"},
		{"${}", "bad substitution"},
		{"${A:x}", "unsupported modifier (x) in substitution"},
		{"${A%x}", "missing ':' in substitution"},
		{"${UNSET:?set it}", "UNSET: set it"},
		{"${EMPTY:?}", "EMPTY: parameter null or not set"},
		{"${UNSET?}", "UNSET: parameter null or not set"},
	}
	for _, tt := range tests {
		_, err := Expand(tt.in, env, '\\')
		if err == nil || err.Error() != tt.want || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Expand(%q) error = %v, want %q", tt.in, err, tt.want)
		}
	}
	if v, err := Expand("${EMPTY?x}", env, '\\'); err != nil || v != "" {
		t.Errorf("${EMPTY?x} = %q %v", v, err)
	}
}

func TestExpandNestingBounded(t *testing.T) {
	deep := strings.Repeat("${A:-", 100) + "x" + strings.Repeat("}", 100)
	if _, err := Expand(deep, MapLookup(nil), '\\'); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	ok := strings.Repeat("${A:-", 10) + "x" + strings.Repeat("}", 10)
	if v, err := Expand(ok, MapLookup(nil), '\\'); err != nil || v != "x" {
		t.Errorf("nesting 10: %q %v", v, err)
	}
}
