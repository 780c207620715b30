package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/durationtext"
)

// WriteJSON writes s as indented JSON.
func WriteJSON(w io.Writer, s Snapshot) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable writes s for a person at a terminal. Times are shown relative
// to s.GeneratedAt, so the output depends on the snapshot alone.
func WriteTable(w io.Writer, s Snapshot) error {
	now := s.GeneratedAt
	healthy, reasons := Healthy(s)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) {
		for i, a := range args {
			if text, ok := a.(string); ok {
				args[i] = oneLine(text)
			}
		}
		fmt.Fprintf(tw, format, args...)
	}

	health := "healthy"
	if !healthy {
		health = "UNHEALTHY"
	}
	p("hostd %s\t%s\tup %s\n", orDash(s.Version), health, since(now, s.StartedAt))
	p("vault\t%s\t%s\n", orDash(s.Vault.Address), vaultLine(s.Vault, now))
	p("auth\t%s\t%s\n", orDash(s.Auth.Method), authLine(s.Auth, now))
	p("\n")

	p("TEMPLATE\tUNIT\tLAST RENDER\tLAST CHANGE\tRESULT\n")
	if len(s.Templates) == 0 {
		p("-\t\t\t\t\n")
	}
	for _, t := range s.Templates {
		p("%s\t%s\t%s\t%s\t%s\n", t.Destination, orDash(t.Unit), ago(now, t.LastRender), ago(now, t.LastChange), renderResult(t))
	}
	p("\n")

	p("UNIT\tSTATE\tLAST RESTART\tRESULT\tPENDING\n")
	if len(s.Units) == 0 {
		p("-\t\t\t\t\n")
	}
	for _, u := range s.Units {
		p("%s\t%s\t%s\t%s\t%s\n", u.Name, unitState(u), ago(now, u.LastRestart), restartResult(u), pending(u, now))
	}
	writeRunningOn(p, s.Units, now)
	writeReports(p, s.Reports, now)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(reasons) > 0 {
		var b strings.Builder
		b.WriteString("\nproblems:\n")
		for _, r := range reasons {
			b.WriteString("  - " + oneLine(r) + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	return nil
}

// oneLine folds the line breaks and tabs of a cell (Vault's client and
// consul-template write errors over several lines) into single spaces, so
// that every row stays one line of the table.
func oneLine(text string) string { return strings.Join(strings.Fields(text), " ") }

// writeRunningOn lists, when known, what each unit's process runs on: a
// short digest of each file's content, or that it started before the file.
func writeRunningOn(p func(string, ...any), units []Unit, now time.Time) {
	header := false
	for _, u := range units {
		for _, f := range u.RunningOn {
			if !header {
				p("\nUNIT\tFILE\tRUNS ON\tSINCE\n")
				header = true
			}
			on := "older content: restart owed"
			if f.Digest != "" {
				on = "sha256:" + f.Digest[:min(12, len(f.Digest))]
			}
			p("%s\t%s\t%s\t%s\n", u.Name, f.Destination, on, ago(now, f.Since))
		}
	}
}

// writeReports lists the last fleet report per site: which key, when, and
// whether Vault took it.
func writeReports(p func(string, ...any), reports []Report, now time.Time) {
	if len(reports) == 0 {
		return
	}
	p("\nFLEET REPORT\tAS HOST\tACCESS KEY\tLAST REPORT\tRESULT\n")
	for _, r := range reports {
		result := "ok"
		if r.LastError != "" {
			result = "error: " + r.LastError
			if !r.LastSuccess.IsZero() {
				result += " (last taken " + ago(now, r.LastSuccess) + ")"
			}
		}
		p("%s/%s/sites/%s\t%s\t%s\t%s\t%s\n", r.Mount, r.Role, r.Site, r.Host, r.AccessKey, ago(now, r.LastAttempt), result)
	}
}

func vaultLine(v Vault, now time.Time) string {
	if v.LastRequest.IsZero() {
		return "no requests yet"
	}
	last := fmt.Sprintf("HTTP %d", v.LastStatusCode)
	if v.LastStatusCode == 0 {
		last = "no answer"
	}
	line := fmt.Sprintf("last request %s: %s; %d requests, %d errors", ago(now, v.LastRequest), last, v.Requests, v.Errors)
	if !v.FailingSince.IsZero() {
		line += "; failing since " + ago(now, v.FailingSince)
	}
	if v.LastError != "" {
		line += "; last error: " + v.LastError
	}
	return line
}

func authLine(a Auth, now time.Time) string {
	var parts []string
	if a.Authenticated {
		parts = append(parts, "authenticated")
		switch {
		case a.TokenExpiry.IsZero():
			parts = append(parts, "token does not expire")
		default:
			parts = append(parts, "token expires in "+duration(a.TokenExpiry.Sub(now)))
		}
		if a.Renewable {
			parts = append(parts, "renewable")
		}
	} else {
		parts = append(parts, "NOT AUTHENTICATED")
	}
	if a.LastError != "" {
		parts = append(parts, fmt.Sprintf("last error %s: %s", ago(now, a.LastErrorTime), a.LastError))
	}
	return strings.Join(parts, ", ")
}

func renderResult(t Template) string {
	switch {
	case t.LastError != "":
		return "error: " + t.LastError
	case t.LastRender.IsZero():
		return "waiting"
	default:
		return "ok"
	}
}

func unitState(u Unit) string {
	switch {
	case u.StateError != "":
		return "unknown"
	case u.ActiveState == "":
		return "-"
	default:
		return joinState(u.ActiveState, u.SubState)
	}
}

func restartResult(u Unit) string {
	switch {
	case u.LastResult == "":
		return "-"
	case u.RolledBack:
		return u.LastResult + ", rolled back"
	default:
		return u.LastResult
	}
}

func pending(u Unit, now time.Time) string {
	if u.PendingDue.IsZero() {
		return "-"
	}
	s := "restart "
	if d := u.PendingDue.Sub(now); d > 0 {
		s += "in " + duration(d)
	} else {
		s += "due now"
	}
	if u.PendingCause != "" {
		s += " (" + u.PendingCause + ")"
	}
	return s
}

// ago prints how long before now t was, or "never" for a zero t.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + duration(-d)
	}
	return duration(d) + " ago"
}

func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration(now.Sub(t))
}

// duration prints d rounded to the second (to the minute past a day), without
// Go's trailing zero units.
func duration(d time.Duration) string {
	if d < 0 {
		return "-" + duration(-d)
	}
	if d >= 24*time.Hour {
		d = d.Round(time.Hour)
		days, hours := d/(24*time.Hour), d%(24*time.Hour)/time.Hour
		if hours == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	return durationtext.Short(d.Round(time.Second))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
