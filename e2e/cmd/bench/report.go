package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// printReport writes the side-by-side table: one row per figure, one column
// per tool; a figure measured once per trial shows min / median / max over
// the trials, propagation over every rotation of every trial.
func printReport(out io.Writer, o options, vaultVersion string, tools []tool, results map[string][]trialResult) {
	fmt.Fprintf(out, "\nhostd vs Vault Agent: %d trial(s) each, %d rotation(s) per trial; both re-read every %s, plugin refresh_interval %s\n",
		o.runs, o.rotations, o.refresh, o.mountRefresh)
	fmt.Fprintf(out, "Vault Agent is `vault agent` of %s; no restart or command on change; min / median / max\n\n", vaultVersion)

	tw := newTable(out, tools)
	row := func(name string, cell func(tl tool, rs []trialResult) string) {
		tw.row(name, func(tl tool) string { return cell(tl, results[tl.name]) })
	}

	row("binary size (stripped)", func(tl tool, _ []trialResult) string { return fileMiB(tl.binary) })
	row("start -> keys in the file", durations(func(r trialResult) time.Duration { return r.startToRender }))
	row("VmRSS after the first render", kib(func(r trialResult) int64 { return r.atStart.rssKiB }))
	row("VmHWM after the first render", kib(func(r trialResult) int64 { return r.atStart.hwmKiB }))
	row(fmt.Sprintf("VmRSS after %d rotations", o.rotations), kib(func(r trialResult) int64 { return r.atEnd.rssKiB }))
	row(fmt.Sprintf("VmHWM after %d rotations", o.rotations), kib(func(r trialResult) int64 { return r.atEnd.hwmKiB }))
	row("CPU (utime+stime) to the first render", millis(func(r trialResult) time.Duration { return r.atStart.cpu }))
	row("CPU during the rotations", millis(func(r trialResult) time.Duration { return r.atEnd.cpu - r.atStart.cpu }))
	row("  per minute of the rotations", millis(func(r trialResult) time.Duration {
		return time.Duration(float64(r.atEnd.cpu-r.atStart.cpu) / r.rotating.Minutes())
	}))
	row("rotate returned -> new key in the file", func(_ tool, rs []trialResult) string {
		var all []time.Duration
		for _, r := range rs {
			all = append(all, r.propagation...)
		}
		return spread(all, seconds) + fmt.Sprintf(" (n=%d)", len(all))
	})
	row("creds re-read interval (median gap)", durations(func(r trialResult) time.Duration { return medianGap(r.requests.credsReads) }))
	row("Vault requests per trial", ints(func(r trialResult) int { return r.requests.total }))
	row("  per minute running", func(_ tool, rs []trialResult) string {
		return spread(collect(rs, func(r trialResult) float64 { return float64(r.requests.total) / r.running.Minutes() }),
			func(v float64) string { return fmt.Sprintf("%.1f", v) })
	})
	row("  creds reads", ints(func(r trialResult) int { return r.requests.creds }))
	row("  logins", ints(func(r trialResult) int { return r.requests.login }))
	row("  others (paths below)", ints(func(r trialResult) int { return r.requests.total - r.requests.creds }))
	row("files holding a Vault token", files(func(r trialResult) []string { return r.tokenFiles }))
	row("files holding an agent secret key", files(func(r trialResult) []string { return r.keyFiles }))
	row("token or secret in its log", files(func(r trialResult) []string { return r.logLeaks }))
	tw.flush()

	fmt.Fprintln(out, "\nVault requests other than creds reads, all trials:")
	for _, tl := range tools {
		fmt.Fprintf(out, "  %s: %s\n", tl.name, otherPaths(results[tl.name]))
	}
}

// table is a side-by-side table: one row per figure, one column per tool.
type table struct {
	tw    *tabwriter.Writer
	tools []tool
}

func newTable(out io.Writer, tools []tool) *table {
	t := &table{tw: tabwriter.NewWriter(out, 0, 0, 3, ' ', 0), tools: tools}
	t.row("figure", func(tl tool) string { return tl.name })
	return t
}

// row writes one figure, cell giving each tool's value.
func (t *table) row(name string, cell func(tl tool) string) {
	line := name
	for _, tl := range t.tools {
		line += "\t" + cell(tl)
	}
	fmt.Fprintln(t.tw, line+"\t")
}

func (t *table) flush() { _ = t.tw.Flush() }

// The cell makers: each turns one figure per trial into min / median / max.

func durations(f func(trialResult) time.Duration) func(tool, []trialResult) string {
	return func(_ tool, rs []trialResult) string {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		return spread(ds, seconds)
	}
}

// millis is for CPU times, counted in 10 ms ticks.
func millis(f func(trialResult) time.Duration) func(tool, []trialResult) string {
	return func(_ tool, rs []trialResult) string {
		return spread(collect(rs, func(r trialResult) float64 { return float64(f(r)) / float64(time.Millisecond) }),
			func(v float64) string { return fmt.Sprintf("%.0f", v) }) + " ms"
	}
}

func kib(f func(trialResult) int64) func(tool, []trialResult) string {
	return func(_ tool, rs []trialResult) string {
		return spread(collect(rs, func(r trialResult) float64 { return float64(f(r)) / 1024 }),
			func(v float64) string { return fmt.Sprintf("%.1f", v) }) + " MiB"
	}
}

func ints(f func(trialResult) int) func(tool, []trialResult) string {
	return func(_ tool, rs []trialResult) string {
		return spread(collect(rs, func(r trialResult) float64 { return float64(f(r)) }),
			func(v float64) string { return fmt.Sprintf("%.0f", v) })
	}
}

// files shows the union over the trials, or "none".
func files(f func(trialResult) []string) func(tool, []trialResult) string {
	return func(_ tool, rs []trialResult) string {
		var all []string
		for _, r := range rs {
			all = append(all, f(r)...)
		}
		slices.Sort(all)
		all = slices.Compact(all)
		if len(all) == 0 {
			return "none"
		}
		return strings.Join(all, ", ")
	}
}

func otherPaths(rs []trialResult) string {
	total := map[string]int{}
	for _, r := range rs {
		for path, n := range r.requests.byPath {
			total[path] += n
		}
	}
	if len(total) == 0 {
		return "none"
	}
	var parts []string
	for path, n := range total {
		parts = append(parts, fmt.Sprintf("%s x%d", path, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func collect(rs []trialResult, f func(trialResult) float64) []float64 {
	vs := make([]float64, 0, len(rs))
	for _, r := range rs {
		vs = append(vs, f(r))
	}
	return vs
}

// spread formats "min / median / max", or the one value there is.
func spread[T time.Duration | float64](vs []T, format func(T) string) string {
	switch len(vs) {
	case 0:
		return "-"
	case 1:
		return format(vs[0])
	}
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	return format(sorted[0]) + " / " + format(median(sorted)) + " / " + format(sorted[len(sorted)-1])
}

// median of vs (the mean of the middle two for an even count).
func median[T time.Duration | float64](vs []T) T {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func fileMiB(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(info.Size())/(1<<20))
}
