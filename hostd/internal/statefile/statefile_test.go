package statefile

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type content struct {
	Version int               `json:"version"`
	Seen    map[string]string `json:"seen"`
}

func newFile(path string, logs *bytes.Buffer) *File {
	return &File{Path: path, Version: 2, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Name: "test state", LostOnRead: "nothing is remembered", LostOnWrite: "nothing survives a restart"}
}

func TestWhatIsSavedIsLoadedByTheNextHostd(t *testing.T) {
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), "state.json")
	if newFile(path, &logs).Load(&content{}) {
		t.Fatal("a missing file loaded")
	}
	newFile(path, &logs).Save(content{Version: 2, Seen: map[string]string{"web": "AK1"}})
	var got content
	if !newFile(path, &logs).Load(&got) || got.Seen["web"] != "AK1" {
		t.Fatalf("loaded %+v", got)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", info, err)
	}
	if logs.Len() != 0 {
		t.Errorf("a missing file and a round trip logged:\n%s", logs.String())
	}
}

func TestAFileItCannotUseIsLeftWithAWarning(t *testing.T) {
	for name, data := range map[string]string{
		"not JSON":              "{not json",
		"wrong type":            `{"version": 2, "seen": [1]}`,
		"another hostd version": `{"version": 1, "seen": {"web": "AK1"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			if newFile(path, &logs).Load(&content{}) {
				t.Fatal("loaded")
			}
			want := "test state unreadable: starting without it; nothing is remembered"
			if name == "another hostd version" {
				want = "test state of another hostd version: starting without it"
			}
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		})
	}
}

func TestAFailedWriteIsLoggedOnceUntilAWriteWorks(t *testing.T) {
	var logs bytes.Buffer
	dir := filepath.Join(t.TempDir(), "missing")
	f := newFile(filepath.Join(dir, "state.json"), &logs)
	f.Save(content{Version: 2})
	f.Save(content{Version: 2})
	if n := strings.Count(logs.String(), "cannot write the test state: nothing survives a restart"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.Save(content{Version: 2})
	if !strings.Contains(logs.String(), "test state written again") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

func TestNoPathKeepsNothingOnDisk(t *testing.T) {
	var logs bytes.Buffer
	f := newFile("", &logs)
	f.Save(content{Version: 2})
	if f.Load(&content{}) || logs.Len() != 0 {
		t.Errorf("a file without a path did something: %s", logs.String())
	}
}
