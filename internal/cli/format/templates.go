package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"unicode"
)

// funcs are the functions of every template, as in docker's CLI. They take any value
// whose kind is string (the API types name their strings: container.ContainerState, ...),
// as docker's did when those fields were plain strings.
var funcs = template.FuncMap{
	"json": func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split":    func(s any, sep string) []string { return strings.Split(str(s), sep) },
	"join":     func(l any, sep string) string { return strings.Join(strs(l), sep) },
	"title":    func(s any) string { return title(str(s)) },
	"lower":    func(s any) string { return strings.ToLower(str(s)) },
	"upper":    func(s any) string { return strings.ToUpper(str(s)) },
	"pad":      func(s any, prefix, suffix int) string { return pad(str(s), prefix, suffix) },
	"truncate": func(s any, n int) string { return truncate(str(s), n) },
}

// headerFuncs replace funcs when a table's header line is rendered: the header stays as
// it is (pad still pads, to keep the columns aligned).
var headerFuncs = template.FuncMap{
	"json":     func(v any) string { return str(v) },
	"split":    func(v any, _ string) string { return str(v) },
	"join":     func(v any, _ string) string { return str(v) },
	"title":    func(v any) string { return str(v) },
	"lower":    func(v any) string { return str(v) },
	"upper":    func(v any) string { return str(v) },
	"truncate": func(v any, _ int) string { return str(v) },
}

// str is a value as a string: itself when its kind is string, else as fmt prints it.
func str(v any) string {
	if v == nil {
		return ""
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String()
	}
	return fmt.Sprint(v)
}

// strs is a list as strings.
func strs(v any) []string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return []string{str(v)}
	}
	out := make([]string, rv.Len())
	for i := range out {
		out[i] = str(rv.Index(i).Interface())
	}
	return out
}

// Parse parses a template with docker's template functions.
func Parse(format string) (*template.Template, error) {
	return template.New("").Funcs(funcs).Parse(format)
}

// pad surrounds a non-empty string with prefix spaces before and suffix spaces after.
func pad(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// title upper-cases the first letter of each word, as strings.Title (which docker's
// template uses) does: a word starts after anything but a letter, a digit or '_'.
func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		start := isSeparator(prev)
		prev = r
		if start {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func isSeparator(r rune) bool {
	if r <= 0x7F {
		switch {
		case '0' <= r && r <= '9', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', r == '_':
			return false
		}
		return true
	}
	if unicode.IsLetter(r) || unicode.IsDigit(r) {
		return false
	}
	return unicode.IsSpace(r)
}
