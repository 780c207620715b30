package running_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
)

const unit = "agent.service"

func process(id string, started time.Time) restart.Process {
	return restart.Process{State: restart.State{ActiveState: "active", SubState: "running", InvocationID: id, MainPID: 42}, Started: started}
}

// writeAt writes path and sets its modification time.
func writeAt(t *testing.T, path, content string, modified time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, modified, modified); err != nil {
		t.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestAProcessOlderThanItsFileIsOwedARestart(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	writeAt(t, conf, "key 2\n", started.Add(time.Minute))

	a := running.New("", discard()).Assess(unit, process("aa", started), []string{conf})
	if len(a.Files) != 1 || !a.Files[0].Owed || a.Files[0].Running != "" {
		t.Fatalf("a file written after the process started: %+v", a.Files)
	}
	if got := a.Owed(); len(got) != 1 || got[0] != conf {
		t.Errorf("Owed() = %q", got)
	}
	if e := a.Event(started); len(e.Files) != 1 || e.Files[0].Digest != "" {
		t.Errorf("event: %+v; the content it runs on is unknown", e)
	}
}

func TestAProcessStartedAfterItsFileRunsOnIt(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	writeAt(t, conf, "key 1\n", started.Add(-time.Minute))

	a := running.New("", discard()).Assess(unit, process("aa", started), []string{conf, filepath.Join(dir, "absent.conf")})
	want := running.Digest([]byte("key 1\n"))
	if f := a.Files[0]; f.Owed || f.Running != want || f.Digest != want || !f.Since.Equal(started) {
		t.Fatalf("a file written before the process started: %+v", f)
	}
	if f := a.Files[1]; f.Owed || f.Running != "" {
		t.Errorf("a file that does not exist is owed nothing: %+v", f)
	}
	if len(a.Owed()) != 0 {
		t.Errorf("Owed() = %q", a.Owed())
	}
}

// A file's modification time comes from the kernel's coarse clock and may
// read a few milliseconds before the moment it was written: a file stamped
// within ModTimeResolution before the process started may be newer than
// the process, and is owed a restart.
func TestAFileWrittenAsTheProcessStartedIsOwedARestart(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	writeAt(t, conf, "key 2\n", started.Add(-running.ModTimeResolution/2))

	if a := running.New("", discard()).Assess(unit, process("aa", started), []string{conf}); len(a.Owed()) != 1 {
		t.Fatalf("a file stamped %s before the start: %+v, want owed", running.ModTimeResolution/2, a.Files)
	}
}

// hostd's own restart: a process started after the batch began, whose file
// still holds what the batch restarted it with, runs on that, however close
// the file's time is to the start.
func TestAProcessStartedByTheBatchRunsOnItsContent(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	begun := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	started := begun.Add(time.Millisecond)
	writeAt(t, conf, "key 2\n", begun.Add(-time.Millisecond))
	tracker := running.New("", discard())
	tracker.Begin(unit, running.Batch{Begun: begun, Files: []running.BatchFile{{Destination: conf, Digest: running.Digest([]byte("key 2\n"))}}})

	want := running.Digest([]byte("key 2\n"))
	if a := tracker.Assess(unit, process("bb", started), []string{conf}); len(a.Owed()) != 0 || a.Files[0].Running != want {
		t.Fatalf("the process the batch started: %+v, want it running on %s", a.Files, want)
	}
	// A process that started before the batch began was not restarted by it.
	if a := tracker.Assess(unit, process("aa", begun.Add(-time.Millisecond)), []string{conf}); len(a.Owed()) != 1 {
		t.Errorf("a process older than the batch: %+v, want owed", a.Files)
	}
	// Content written since the batch began is not what it restarted with.
	writeAt(t, conf, "key 3\n", begun.Add(-time.Millisecond))
	if a := tracker.Assess(unit, process("cc", started), []string{conf}); len(a.Owed()) != 1 {
		t.Errorf("a file changed since the batch began: %+v, want owed", a.Files)
	}
}

func TestAStoppedUnitRunsOnNothingAndIsOwedNothing(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.conf")
	writeAt(t, conf, "key 2\n", time.Now())
	stopped := restart.Process{State: restart.State{ActiveState: "inactive", SubState: "dead"}, Started: time.Now().Add(-time.Hour)}
	if a := running.New("", discard()).Assess(unit, stopped, []string{conf}); len(a.Files) != 0 {
		t.Errorf("a stopped unit: %+v", a.Files)
	}
}

// The record of the same process decides over file times: the bytes it
// runs on written again (a rollback's restore, a clock step) owe nothing,
// and other bytes with an old time still owe a restart.
func TestTheRecordOfTheSameProcessDecides(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	writeAt(t, conf, "key 1\n", started.Add(-time.Minute))
	tracker := running.New(dir, discard())
	p := process("aa", started)
	tracker.Assess(unit, p, []string{conf})

	writeAt(t, conf, "key 1\n", started.Add(time.Hour))
	if a := running.New(dir, discard()).Assess(unit, p, []string{conf}); len(a.Owed()) != 0 {
		t.Errorf("the same bytes written again: %+v", a.Files)
	}
	writeAt(t, conf, "key 2\n", started.Add(-time.Hour))
	a := running.New(dir, discard()).Assess(unit, p, []string{conf})
	if len(a.Owed()) != 1 || a.Files[0].Running != running.Digest([]byte("key 1\n")) {
		t.Errorf("other bytes with an older time: %+v", a.Files)
	}
	// Another process of the unit: the times decide again.
	if a := running.New(dir, discard()).Assess(unit, process("bb", started.Add(-30*time.Minute)), []string{conf}); len(a.Owed()) != 0 {
		t.Errorf("a new process started after the file: %+v", a.Files)
	}
}

func TestABatchIsKeptUntilSettledAcrossTrackers(t *testing.T) {
	dir := t.TempDir()
	b := running.Batch{Begun: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Files: []running.BatchFile{
		{Destination: "/etc/sigsci/agent.conf", Digest: running.Digest([]byte("new")), Previous: running.Digest([]byte("old"))},
	}}
	running.New(dir, discard()).Begin(unit, b)

	later := running.New(dir, discard())
	got, ok := later.Unfinished(unit)
	if !ok || !got.Begun.Equal(b.Begun) || len(got.Files) != 1 || got.Files[0] != b.Files[0] {
		t.Fatalf("Unfinished after a restart of hostd = %+v, %v; want %+v", got, ok, b)
	}
	later.Settle(unit)
	if _, ok := running.New(dir, discard()).Unfinished(unit); ok {
		t.Error("a settled batch is still there")
	}

	info, err := os.Stat(filepath.Join(dir, running.StateFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", info, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, running.StateFile))
	if bytes.Contains(data, []byte("old")) || bytes.Contains(data, []byte("new\"")) {
		t.Errorf("the state file holds file content:\n%s", data)
	}
}

func TestAnUnwritableStateDirectoryIsLoggedOnceAndKeptInMemory(t *testing.T) {
	var logs bytes.Buffer
	tracker := running.New(filepath.Join(t.TempDir(), "missing"), slog.New(slog.NewTextHandler(&logs, nil)))
	tracker.Begin(unit, running.Batch{Begun: time.Now()})
	tracker.Begin(unit, running.Batch{Begun: time.Now()})
	if _, ok := tracker.Unfinished(unit); !ok {
		t.Error("the batch must be kept in memory")
	}
	if n := strings.Count(logs.String(), "cannot write the state file"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestACorruptStateFileStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, running.StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tracker := running.New(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, ok := tracker.Unfinished(unit); ok || !strings.Contains(logs.String(), "state file unreadable") {
		t.Errorf("corrupt state file: unfinished %v, logs %s", ok, logs.String())
	}
}
