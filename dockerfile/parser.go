package dockerfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/cais-platform/cais/errdefs"
)

// Limits on what Parse accepts.
const (
	// MaxSize bounds a Dockerfile's bytes.
	MaxSize = 4 << 20
	// maxLine bounds one physical line.
	maxLine = 1 << 20
	// MaxInstructions bounds the instructions of a Dockerfile. The
	// classic builder commits an image per instruction, and overlayfs
	// stacks at most about 128 layers, so real Dockerfiles stay far below.
	MaxInstructions = 2048
	// maxOnbuildDepth: ONBUILD cannot nest, so one level.
)

// ParseError is a syntax error at a line, worded as the classic builder
// words it: "dockerfile parse error line 3: unknown instruction: FOO".
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("dockerfile parse error line %d: %s", e.Line, e.Msg)
}

// Is makes every ParseError an errdefs.ErrInvalid.
func (e *ParseError) Is(target error) bool { return target == errdefs.ErrInvalid }

func parseErr(line int, format string, args ...any) error {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Node is one instruction as written: its keyword, flags and arguments,
// before variables are expanded.
type Node struct {
	// Cmd is the keyword in lower case ("run", "copy").
	Cmd string
	// Flags are the leading --name[=value] words ("--from=build").
	Flags []string
	// Args are the arguments; their shape depends on the instruction (see
	// doc.go). For the shell form of RUN, CMD and ENTRYPOINT it is the one
	// string of the command line.
	Args []string
	// JSON is set for the exec (JSON array) form.
	JSON bool
	// Next is the trigger of an ONBUILD.
	Next *Node
	// Original is the instruction's text, continuation lines joined.
	Original string
	// StartLine and EndLine are the 1-based lines it spans.
	StartLine, EndLine int
}

// Result is a parsed Dockerfile.
type Result struct {
	// Nodes are the instructions in order.
	Nodes []*Node
	// EscapeToken is the escape character: '\\' or '`'.
	EscapeToken rune
	// Syntax is the value of the "# syntax=" directive, if any.
	Syntax string
	// Warnings are things Docker warns about (empty continuation lines).
	Warnings []string
}

// Parse reads a Dockerfile. It checks syntax only: instructions are known,
// arguments have the right shape. Variables are left for the evaluator.
func Parse(r io.Reader) (*Result, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read dockerfile: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("dockerfile larger than %d bytes: %w", MaxSize, errdefs.ErrInvalid)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
	lines, err := splitLines(data)
	if err != nil {
		return nil, err
	}

	res := &Result{EscapeToken: '\\'}
	i := 0
	// Parser directives: "# name=value" lines at the very top.
	seen := map[string]bool{}
	for ; i < len(lines); i++ {
		name, value, ok := directive(lines[i])
		if !ok {
			break
		}
		if seen[name] {
			return nil, parseErr(i+1, "only one %s parser directive can be used", name)
		}
		seen[name] = true
		switch name {
		case "escape":
			if value != "`" && value != "\\" {
				return nil, parseErr(i+1, "invalid escape token '%s' does not match ` or \\", value)
			}
			res.EscapeToken = rune(value[0])
		case "syntax":
			res.Syntax = value
		}
	}

	emptyContinuation := 0
	for i < len(lines) {
		line := lines[i]
		start := i + 1
		i++
		trimmed := strings.TrimLeftFunc(line, unicode.IsSpace)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		first, cont := trimContinuation(trimmed, res.EscapeToken)
		var text strings.Builder
		text.WriteString(first)
		end := start
		for cont && i < len(lines) {
			next := lines[i]
			i++
			nt := strings.TrimLeftFunc(next, unicode.IsSpace)
			if nt != "" && nt[0] == '#' {
				continue // comments inside a continued instruction vanish
			}
			if strings.TrimSpace(next) == "" {
				emptyContinuation++
				continue
			}
			end = i
			var part string
			part, cont = trimContinuation(next, res.EscapeToken)
			text.WriteString(part)
		}
		node, err := parseInstruction(text.String(), res.EscapeToken, start, false)
		if err != nil {
			return nil, err
		}
		node.EndLine = end
		if len(res.Nodes) == MaxInstructions {
			return nil, parseErr(start, "more than %d instructions", MaxInstructions)
		}
		res.Nodes = append(res.Nodes, node)
	}
	if emptyContinuation > 0 {
		res.Warnings = append(res.Warnings, "[WARNING]: Empty continuation line found in Dockerfile. Empty continuation lines will become errors in a future release.")
	}
	if len(res.Nodes) == 0 {
		return nil, fmt.Errorf("the Dockerfile cannot be empty: %w", errdefs.ErrInvalid)
	}
	return res, nil
}

// splitLines splits on "\n", dropping a "\r" before it.
func splitLines(data []byte) ([]string, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		lines = append(lines, strings.TrimSuffix(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dockerfile line %d: %w: %w", len(lines)+1, err, errdefs.ErrInvalid)
	}
	return lines, nil
}

// directive recognizes "# name=value" with a known or unknown lower-case
// name of letters; any other line ends the directives.
func directive(line string) (name, value string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
	if !ok {
		return "", "", false
	}
	name, value, ok = strings.Cut(rest, "=")
	if !ok {
		return "", "", false
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return "", "", false
	}
	for _, c := range name {
		if c < 'a' || c > 'z' {
			return "", "", false
		}
	}
	switch name {
	case "escape", "syntax", "check":
		return name, strings.TrimSpace(value), true
	}
	return "", "", false
}

// trimContinuation removes trailing white space and reports whether the
// line ends with the escape token, which it removes.
func trimContinuation(line string, escape rune) (string, bool) {
	t := strings.TrimRightFunc(line, unicode.IsSpace)
	if strings.HasSuffix(t, string(escape)) {
		return t[:len(t)-len(string(escape))], true
	}
	return line, false
}

// instructions maps each keyword to the parser of its arguments.
var instructions = map[string]func(cmd, rest string, escape rune) ([]string, bool, error){
	"from":        whitespaceWords,
	"run":         maybeJSON,
	"cmd":         maybeJSON,
	"entrypoint":  maybeJSON,
	"shell":       maybeJSON,
	"copy":        maybeJSONList,
	"add":         maybeJSONList,
	"volume":      maybeJSONList,
	"env":         nameValues,
	"label":       nameValues,
	"arg":         nameOrNameValues,
	"workdir":     wholeString,
	"user":        wholeString,
	"expose":      whitespaceWords,
	"stopsignal":  wholeString,
	"maintainer":  wholeString,
	"healthcheck": healthcheck,
	"onbuild":     nil, // parsed as a nested instruction
}

func parseInstruction(text string, escape rune, line int, inOnbuild bool) (*Node, error) {
	text = strings.TrimSpace(text)
	word, rest := cutSpace(text)
	cmd := strings.ToLower(word)
	parser, known := instructions[cmd]
	if !known {
		return nil, parseErr(line, "unknown instruction: %s", strings.ToUpper(word))
	}
	node := &Node{Cmd: cmd, Original: text, StartLine: line, EndLine: line}
	flags, rest, err := extractFlags(rest)
	if err != nil {
		return nil, parseErr(line, "%s", err)
	}
	node.Flags = flags
	if cmd == "onbuild" {
		if inOnbuild {
			return nil, parseErr(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
		}
		if strings.TrimSpace(rest) == "" {
			return nil, parseErr(line, "ONBUILD requires at least one argument")
		}
		next, err := parseInstruction(rest, escape, line, true)
		if err != nil {
			return nil, err
		}
		switch next.Cmd {
		case "onbuild":
			return nil, parseErr(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
		case "from", "maintainer":
			return nil, parseErr(line, "%s isn't allowed as an ONBUILD trigger", strings.ToUpper(next.Cmd))
		}
		node.Next = next
		node.Args = []string{next.Original}
		return node, nil
	}
	args, isJSON, err := parser(strings.ToUpper(cmd), rest, escape)
	if err != nil {
		return nil, parseErr(line, "%s", err)
	}
	node.Args, node.JSON = args, isJSON
	return node, nil
}

// cutSpace splits off the first white-space separated word.
func cutSpace(s string) (string, string) {
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
}

// extractFlags takes the leading words that start with "--". A lone "--"
// ends the flags.
func extractFlags(rest string) ([]string, string, error) {
	var flags []string
	for strings.HasPrefix(rest, "--") {
		word, after := cutSpace(rest)
		if word == "--" {
			return flags, after, nil
		}
		flags = append(flags, word)
		rest = after
	}
	return flags, rest, nil
}

// wholeString keeps the rest as one argument.
func wholeString(cmd, rest string, _ rune) ([]string, bool, error) {
	if rest == "" {
		return nil, false, nil
	}
	return []string{rest}, false, nil
}

// whitespaceWords splits on white space.
func whitespaceWords(cmd, rest string, _ rune) ([]string, bool, error) {
	return strings.Fields(rest), false, nil
}

// maybeJSON is the exec form when rest is a JSON array of strings, and
// otherwise the shell form: the whole string.
func maybeJSON(cmd, rest string, _ rune) ([]string, bool, error) {
	if rest == "" {
		return nil, false, nil
	}
	if strings.HasPrefix(rest, "[") {
		var arr []string
		if err := json.Unmarshal([]byte(rest), &arr); err == nil {
			return arr, true, nil
		}
	}
	return []string{rest}, false, nil
}

// maybeJSONList is a JSON array of strings or white-space separated words.
func maybeJSONList(cmd, rest string, escape rune) ([]string, bool, error) {
	if strings.HasPrefix(rest, "[") {
		var arr []string
		if err := json.Unmarshal([]byte(rest), &arr); err == nil {
			return arr, true, nil
		}
	}
	return splitWords(rest, escape), false, nil
}

// splitWords splits on white space outside quotes. Quotes and escapes stay
// in the words; expansion removes them later.
func splitWords(s string, escape rune) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			escaped = false
			cur.WriteRune(c)
		case c == escape && quote != '\'':
			escaped = true
			inWord = true
			cur.WriteRune(c)
		case quote != 0:
			if c == quote {
				quote = 0
			}
			cur.WriteRune(c)
		case c == '\'' || c == '"':
			quote = c
			inWord = true
			cur.WriteRune(c)
		case unicode.IsSpace(c):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			inWord = true
			cur.WriteRune(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// nameValues parses ENV and LABEL: "key=value ..." pairs, or the legacy
// "key value with spaces". Args alternate key, value.
func nameValues(cmd, rest string, escape rune) ([]string, bool, error) {
	words := splitWords(rest, escape)
	if len(words) == 0 {
		return nil, false, nil
	}
	if !strings.Contains(words[0], "=") {
		key, value := cutSpace(rest)
		if value == "" {
			return nil, false, fmt.Errorf("%s must have two arguments", cmd)
		}
		return []string{key, value}, false, nil
	}
	var out []string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, false, fmt.Errorf("Syntax error - can't find = in %q. Must be of the form: name=value", w)
		}
		if k == "" {
			return nil, false, fmt.Errorf("%s names can not be blank", cmd)
		}
		out = append(out, k, v)
	}
	return out, false, nil
}

// nameOrNameValues parses ARG: words "name" or "name=value".
func nameOrNameValues(cmd, rest string, escape rune) ([]string, bool, error) {
	return splitWords(rest, escape), false, nil
}

// healthcheck parses "NONE" or "[--flags] CMD command".
func healthcheck(cmd, rest string, escape rune) ([]string, bool, error) {
	word, after := cutSpace(rest)
	switch strings.ToUpper(word) {
	case "NONE":
		if after != "" {
			return nil, false, fmt.Errorf("HEALTHCHECK NONE takes no arguments")
		}
		return []string{"NONE"}, false, nil
	case "CMD":
		args, isJSON, err := maybeJSON(cmd, after, escape)
		if err != nil {
			return nil, false, err
		}
		if len(args) == 0 {
			return nil, false, fmt.Errorf("Missing command after HEALTHCHECK CMD")
		}
		return append([]string{"CMD"}, args...), isJSON, nil
	case "":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("Unknown type %q in HEALTHCHECK (try CMD)", strings.ToUpper(word))
}
