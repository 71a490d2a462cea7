package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxConfigSize bounds the config file; a larger one is surely a mistake.
const maxConfigSize = 4 << 20

// Problem is one thing wrong with a config: where (YAML path and line) and
// what.
type Problem struct {
	Path string // e.g. routes[2].upstream; empty for the document itself
	Line int    // 0 when unknown
	Msg  string
}

func (p Problem) Error() string {
	switch {
	case p.Path == "" && p.Line == 0:
		return p.Msg
	case p.Line == 0:
		return p.Path + ": " + p.Msg
	case p.Path == "":
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return fmt.Sprintf("%s (line %d): %s", p.Path, p.Line, p.Msg)
}

// Problems is every problem found in a config, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// LoadFile reads, strictly decodes, resolves defaults in and validates the
// config at path, and checks the files it names (CheckFiles). On any
// problem it returns a Problems error listing all of them. check-config,
// serve and reload all run it, so they refuse exactly the same configs.
func LoadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxConfigSize+1)); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if buf.Len() > maxConfigSize {
		return nil, fmt.Errorf("read config: larger than %d bytes", maxConfigSize)
	}
	return load(buf.Bytes(), true)
}

// Load strictly decodes a YAML document, resolves its defaults
// (ApplyDefaults) and validates it. It reads no other file: the files the
// config names are checked by LoadFile.
func Load(data []byte) (*Config, error) { return load(data, false) }

func load(data []byte, checkFiles bool) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(root.Content) == 0 {
		return nil, Problems{{Msg: "config is empty"}}
	}
	doc := root.Content[0]
	idx := pathIndex{}
	var probs Problems
	walk(doc, reflect.TypeOf(Config{}), "", doc.Line, idx, &probs)

	var c Config
	if err := doc.Decode(&c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{{Msg: err.Error()}}
		}
		for _, m := range te.Errors {
			probs = append(probs, idx.fromDecodeError(m))
		}
	}
	c.ApplyDefaults()
	// Validate even when keys were unknown or mistyped, so that one pass
	// reports everything; but skip a validation problem under a path that
	// already failed to decode, since its value is missing rather than wrong.
	failed := map[string]bool{}
	for _, p := range probs {
		failed[p.Path] = true
	}
	for _, p := range c.validate() {
		if underFailed(p.Path, failed) {
			continue
		}
		if p.Line == 0 {
			p.Line = idx.line(p.Path)
		}
		probs = append(probs, p)
	}
	if checkFiles {
		// A file is not read when its path was already refused; only the
		// exact path counts here, so that refusing redis as a whole still
		// reports an unreadable redis.password_file.
		for _, p := range probs {
			failed[p.Path] = true
		}
		for _, p := range c.checkFiles(time.Now()) {
			if failed[p.Path] {
				continue
			}
			p.Line = idx.line(p.Path)
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return nil, probs
	}
	return &c, nil
}

// underFailed reports whether path or one of its parents is in failed.
func underFailed(path string, failed map[string]bool) bool {
	for p := path; p != ""; p = parentPath(p) {
		if failed[p] {
			return true
		}
	}
	return false
}

// pathIndex maps a YAML path to the line where its value starts.
type pathIndex map[string]int

// line returns the line of path or, failing that, of its nearest parent.
func (idx pathIndex) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := idx[p]; ok {
			return l
		}
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

var decodeLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// fromDecodeError turns a yaml.v3 type error into a Problem with the path
// whose value starts on that line.
func (idx pathIndex) fromDecodeError(msg string) Problem {
	m := decodeLine.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	best := ""
	for p, l := range idx {
		if l == line && len(p) > len(best) {
			best = p
		}
	}
	return Problem{Path: best, Line: line, Msg: m[2]}
}

// walk records the line of every path and reports keys that t has no field
// for. It follows the Go types, so the check stays in step with the structs.
//
// The index records the line of a mapping key rather than of its value, so
// that a problem with a block (say "sso:") points at the key that opens it.
func walk(n *yaml.Node, t reflect.Type, path string, line int, idx pathIndex, probs *Problems) {
	if path != "" {
		idx[path] = line
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && t != reflect.TypeOf(Duration(0)):
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := k.Value
			if path != "" {
				child = path + "." + k.Value
			}
			if seen[k.Value] {
				*probs = append(*probs, Problem{Path: child, Line: k.Line, Msg: "duplicate key"})
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, Problem{Path: child, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			walk(v, ft, child, k.Line, idx, probs)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, e := range n.Content {
			walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), e.Line, idx, probs)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// suggest names a known key that differs from k by a small edit, so that
// "hosst" points at "host".
func suggest(k string, fields map[string]reflect.Type) string {
	for name := range fields {
		if editDistance(k, name) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
