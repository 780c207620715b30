package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Problem is one mistake (or, in Config.Warnings, one doubtful setting) in a
// configuration file, with where it is.
type Problem struct {
	File    string
	Line    int // 1-based; 0 when the problem concerns the whole file
	Column  int // 1-based
	Summary string
	Detail  string
}

// String formats the problem as "file:line:col: summary; detail", the form
// editors and compilers use.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	b.WriteString(p.Summary)
	if p.Detail != "" {
		b.WriteString("; ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Error lists every problem found in a configuration file.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0].String()
	}
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("invalid configuration: %d problems:", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// problems turns the errors (or, with errors false, the warnings) of diags
// into Problems ordered by position; filename names problems hcl left
// without a place.
func problems(filename string, diags hcl.Diagnostics, errors bool) []Problem {
	var out []Problem
	for _, d := range diags {
		if (d.Severity == hcl.DiagError) != errors {
			continue
		}
		p := Problem{File: filename, Summary: d.Summary, Detail: d.Detail}
		if d.Subject != nil {
			p.File = d.Subject.Filename
			p.Line = d.Subject.Start.Line
			p.Column = d.Subject.Start.Column
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Column < out[j].Column
	})
	return firstPerPosition(out)
}

// firstPerPosition keeps the first problem reported at each position: hcl
// may follow "Variables not allowed" with a vaguer complaint about the same
// value, which only adds noise.
func firstPerPosition(sorted []Problem) []Problem {
	var out []Problem
	for _, p := range sorted {
		if n := len(out); n > 0 && p.Line > 0 && p.Line == out[n-1].Line && p.Column == out[n-1].Column {
			continue
		}
		out = append(out, p)
	}
	return out
}
