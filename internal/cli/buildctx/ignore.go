// Package buildctx owns the build context of `berth build` on the client: reading
// .dockerignore, matching its patterns as docker does (Go filepath.Match syntax with "**",
// "!" exceptions, the last matching pattern wins, a pattern matching a directory excludes
// what is under it), finding the Dockerfile, and writing the context directory as the tar
// stream the classic builder (POST /build) receives.
//
// It does not talk to a daemon.
package buildctx

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"text/scanner"
)

// ReadIgnore reads the patterns of a .dockerignore: one per line, "#" comments and blank
// lines skipped, whitespace trimmed, paths cleaned and made relative.
func ReadIgnore(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	var out []string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.TrimSpace(line)
		if p == "" {
			continue
		}
		invert := p[0] == '!'
		if invert {
			p = strings.TrimSpace(p[1:])
		}
		if p != "" {
			p = filepath.ToSlash(filepath.Clean(p))
			if len(p) > 1 && p[0] == '/' {
				p = p[1:]
			}
		}
		if invert {
			p = "!" + p
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return out, nil
}

// Pattern is one compiled .dockerignore pattern.
type Pattern struct {
	text      string
	exclusion bool
	re        *regexp.Regexp
}

// String is the pattern as written, without its "!".
func (p *Pattern) String() string { return p.text }

// Exclusion reports whether the pattern re-includes ("!").
func (p *Pattern) Exclusion() bool { return p.exclusion }

// Matcher matches paths against patterns.
type Matcher struct{ patterns []*Pattern }

// NewMatcher compiles patterns.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pat := &Pattern{}
		if p[0] == '!' {
			if len(p) == 1 {
				return nil, fmt.Errorf("illegal exclusion pattern: %q", "!")
			}
			pat.exclusion = true
			p = p[1:]
		}
		p = filepath.Clean(p)
		if p == "." {
			continue // docker drops patterns that mean the whole context
		}
		pat.text = p
		re, err := compile(p)
		if err != nil {
			return nil, fmt.Errorf("invalid pattern %q: %w", p, err)
		}
		pat.re = re
		m.patterns = append(m.patterns, pat)
	}
	return m, nil
}

// Patterns are the compiled patterns.
func (m *Matcher) Patterns() []*Pattern { return m.patterns }

// Exclusions reports whether any pattern is an exception ("!").
func (m *Matcher) Exclusions() bool {
	for _, p := range m.patterns {
		if p.exclusion {
			return true
		}
	}
	return false
}

// compile turns a pattern into a regular expression, as docker's patternmatcher does:
// "*" and "?" do not cross "/", "**" crosses any number of directories.
func compile(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	var s scanner.Scanner
	s.Init(strings.NewReader(p))
	s.Mode = 0 // characters, no Go tokens
	for s.Peek() != scanner.EOF {
		ch := s.Next()
		switch {
		case ch == '*':
			if s.Peek() == '*' {
				s.Next()
				if s.Peek() == '/' {
					s.Next()
				}
				if s.Peek() == scanner.EOF {
					b.WriteString(".*")
				} else {
					b.WriteString("(.*/)?")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case ch == '?':
			b.WriteString("[^/]")
		case strings.ContainsRune(".+()|{}$", ch):
			b.WriteString(`\` + string(ch))
		case ch == '\\':
			if s.Peek() != scanner.EOF {
				b.WriteString(`\` + string(s.Next()))
			} else {
				b.WriteString(`\\`)
			}
		default:
			b.WriteRune(ch)
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Matches reports whether file (a slash-separated path relative to the context) is
// excluded: the last pattern matching it or one of its parent directories decides.
func (m *Matcher) Matches(file string) bool {
	file = filepath.ToSlash(filepath.Clean(file))
	parent := filepath.ToSlash(filepath.Dir(file))
	dirs := strings.Split(parent, "/")
	matched := false
	for _, p := range m.patterns {
		// An inclusion cannot change a match, nor an exclusion a non-match.
		if p.exclusion != matched {
			continue
		}
		match := p.re.MatchString(file)
		if !match && parent != "." {
			for i := range dirs {
				if p.re.MatchString(strings.Join(dirs[:i+1], "/")) {
					match = true
					break
				}
			}
		}
		if match {
			matched = !p.exclusion
		}
	}
	return matched
}
