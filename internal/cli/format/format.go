// Package format renders berth's listings the way docker's CLI does: Go templates with
// docker's template functions (json, join, lower, upper, title, split, truncate, pad, and
// text/template's println), the "table" and "json" directives of --format, and tables
// aligned with text/tabwriter under docker's column headers.
//
// It owns the row contexts of the listings (containers, images, volumes, networks, stats,
// disk usage): the methods a template may call on a row, and the header each names. It
// does not talk to a daemon: callers hand it API values and an output stream.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"unicode"
)

// The --format keywords.
const (
	TableKey = "table"
	JSONKey  = "json"
	// QuietFormat is the format of -q: IDs only.
	QuietFormat = "{{.ID}}"
)

// Format is a --format value: "table", "table TEMPLATE", "json" or a bare template.
type Format string

// listFormat is the format of a listing: quiet's with -q, whatever --format says; the
// default table without --format or with "table"; else --format's value.
func listFormat(source string, quiet bool, table, quietFormat Format) Format {
	switch {
	case quiet:
		return quietFormat
	case source == TableKey || source == "":
		return table
	}
	return Format(source)
}

// IsTable reports whether f asks for a table with headers.
func (f Format) IsTable() bool { return strings.HasPrefix(string(f), TableKey) }

// IsJSON reports whether f is the "json" directive (one JSON object per row).
func (f Format) IsJSON() bool { return string(f) == JSONKey }

// Contains reports whether f contains sub.
func (f Format) Contains(sub string) bool { return strings.Contains(string(f), sub) }

// template is the Go template of f: without the "table" prefix, "{{json .}}" for "json",
// with the escapes \t and \n turned into tabs and newlines.
func (f Format) template() string {
	s := string(f)
	switch {
	case f.IsTable():
		s = s[len(TableKey):]
	case f.IsJSON():
		s = "{{json .}}"
	}
	s = strings.Trim(s, " ")
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
}

// Header maps the names a row template uses (".ID") to column headers ("CONTAINER ID").
// It is what the template is executed on to print a table's header line.
type Header map[string]string

// Label is the header of a {{.Label "name"}} column: the last dot-separated part of the
// label's name, with dashes and underscores as spaces.
func (h Header) Label(name string) string {
	n := strings.Split(name, ".")
	return strings.NewReplacer("-", " ", "_", " ").Replace(n[len(n)-1])
}

// Write renders rows with format f to w. For a table it prints the header line (the
// template executed on header with the header functions) and aligns the columns; otherwise
// it prints one template execution per row, each followed by a newline.
func Write(w io.Writer, f Format, header Header, rows []any) error {
	tmpl, err := Parse(f.template())
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	var body bytes.Buffer
	for _, r := range rows {
		if err := tmpl.Execute(&body, r); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		body.WriteString("\n")
	}
	if !f.IsTable() {
		_, err := body.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	var head bytes.Buffer
	// A template that cannot be executed on the header (a method with other arguments)
	// leaves the header line as far as it got, as docker does.
	_ = tmpl.Funcs(headerFuncs).Execute(&head, header)
	head.WriteString("\n")
	if _, err := head.WriteTo(tw); err != nil {
		return err
	}
	if _, err := body.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// MarshalMethods marshals a row context to a JSON object whose keys are the names of its
// exported methods without arguments and with one result, as docker's "json" format does.
func MarshalMethods(x any) ([]byte, error) {
	v := reflect.ValueOf(x)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, fmt.Errorf("marshal row: want a pointer to a struct, got %T", x)
	}
	t := v.Type()
	m := map[string]any{}
	for i := 0; i < v.NumMethod(); i++ {
		meth := t.Method(i)
		fn := v.Method(i)
		if !unicode.IsUpper(rune(meth.Name[0])) || meth.Name == "MarshalJSON" ||
			fn.Type().NumIn() != 0 || fn.Type().NumOut() != 1 {
			continue
		}
		m[meth.Name] = fn.Call(nil)[0].Interface()
	}
	return json.Marshal(m)
}
