package status

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// A refresh waits until every template has rendered since the ask and says
// what each of those renders did; a change before the ask is not one.
func TestRefreshReportsEachRenderSinceTheAsk(t *testing.T) {
	st := NewState(Options{Templates: []TemplateRef{{Destination: "/etc/a.conf"}, {Destination: "/etc/b.conf"}, {Destination: "/etc/c.conf"}}})
	st.Publish(event.Render{Time: time.Now().Add(-time.Minute), Template: "/etc/c.conf", Changed: true})
	path := socketPath(t)
	serveWithRefresh(t, path, 0o600, st, func() error {
		go func() { // hostd renders after it answered the ask
			now := time.Now()
			st.Publish(event.Render{Time: now, Template: "/etc/a.conf", Changed: true})
			st.Publish(event.Render{Time: now, Template: "/etc/b.conf", Err: "missing key secretKey"})
			st.Publish(event.Render{Time: now, Template: "/etc/c.conf"})
		}()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	report, err := Refresh(ctx, path)
	want := []RefreshedTemplate{{Destination: "/etc/a.conf", Changed: true}, {Destination: "/etc/b.conf", Err: "missing key secretKey"}, {Destination: "/etc/c.conf"}}
	if err != nil || !slices.Equal(report.Templates, want) || report.Failed() != 1 || report.Took <= 0 || report.Asked.IsZero() {
		t.Fatalf("Refresh = %+v, %v; want %+v, one failed", report, err, want)
	}
	var out strings.Builder
	if err := WriteRefresh(&out, report); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"/etc/a.conf\tchanged\n", "/etc/b.conf\tfailed: missing key secretKey\n", "/etc/c.conf\tunchanged\n", "refreshed 3 template(s) in "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}

// Only an ask hostd never took is an AskError: renders that do not come in
// time are a different failure.
func TestRefreshTellsAnAskNotTakenFromRendersThatDoNotCome(t *testing.T) {
	st := NewState(Options{Templates: []TemplateRef{{Destination: "/etc/a.conf"}}})
	quiet := socketPath(t)
	serveWithRefresh(t, quiet, 0o600, st, func() error { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var notAsked *AskError
	if _, err := Refresh(ctx, quiet); err == nil || errors.As(err, &notAsked) || !strings.Contains(err.Error(), "not every template rendered") {
		t.Errorf("Refresh without renders = %v, want a timeout that is no AskError", err)
	}

	if _, err := Refresh(context.Background(), filepath.Join(t.TempDir(), "none.sock")); !errors.As(err, &notAsked) {
		t.Errorf("Refresh without hostd = %v, want an AskError", err)
	}
	refusing := socketPath(t)
	serveWithRefresh(t, refusing, 0o600, st, func() error { return errors.New("hostd renders no template: nothing to refresh") })
	if _, err := Refresh(context.Background(), refusing); !errors.As(err, &notAsked) || !strings.Contains(err.Error(), "nothing to refresh") {
		t.Errorf("Refresh of a hostd that refuses = %v, want an AskError with its reason", err)
	}
}
