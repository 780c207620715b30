package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// mirror is one pair of types that hostd/daemon copies field by field, so
// that the stages need not import config or each other: a value of the first
// type is mapped onto the second by the daemon's own mapping.
type mirror struct {
	name string
	// run fills every field of a source value (fill) and returns it with
	// what the daemon's mapping makes of it.
	run func(t *testing.T) (from, to any)
	// notMapped names the fields, of either side, that have no counterpart
	// on purpose, and why.
	notMapped map[string]string
}

// mirrorOf is the mirror that maps a filled S with mapping.
func mirrorOf[S, D any](name string, mapping func(S) D, notMapped map[string]string) mirror {
	return mirror{name: name, notMapped: notMapped, run: func(t *testing.T) (any, any) {
		var from S
		fill(t, &from)
		return from, mapping(from)
	}}
}

var mirrors = []mirror{
	mirrorOf("config.Template to render.Template", func(c config.Template) render.Template {
		return renderTemplates(&config.Config{Templates: []config.Template{c}})[0]
	}, map[string]string{
		"Source": "config reads the template file into Contents; the renderer reads no file of its own",
	}),
	mirrorOf("render.Change to rollout.Change", func(c render.Change) rollout.Change {
		return rolloutChanges([]render.Change{c})[0]
	}, nil),
	mirrorOf("auth.State to status.Auth", authStatus, map[string]string{
		"ConsecutiveFailures": "auth's backoff counter; the status output shows the last error and its time instead",
	}),
	mirrorOf("config.Window to rollout.Window", func(w config.Window) rollout.Window {
		return *rolloutOptions(&config.Config{Restart: config.Restart{Window: &w}}).Window
	}, nil),
	mirrorOf("config.Check to rollout.Check", func(c config.Check) rollout.Check {
		return *rolloutOptions(&config.Config{Restart: config.Restart{Check: &c}}).Check
	}, nil),
}

// A field added to a config or state type must reach its mirror, and a field
// added to a mirror must be filled from its source: otherwise a new option or
// state is dropped without a word.
func TestMirrorTypesMapEveryField(t *testing.T) {
	for _, m := range mirrors {
		t.Run(m.name, func(t *testing.T) {
			from, to := m.run(t)
			src, dst := reflect.ValueOf(from), reflect.ValueOf(to)
			for name := range m.notMapped {
				_, inSrc := src.Type().FieldByName(name)
				_, inDst := dst.Type().FieldByName(name)
				if !inSrc && !inDst {
					t.Errorf("notMapped names %s, a field of neither %s nor %s", name, src.Type(), dst.Type())
				}
			}
			for _, f := range reflect.VisibleFields(src.Type()) {
				if !f.IsExported() || m.notMapped[f.Name] != "" {
					continue
				}
				d := dst.FieldByName(f.Name)
				if !d.IsValid() {
					t.Errorf("%s.%s reaches no field of %s: map it in hostd/daemon, or say in notMapped why not", src.Type(), f.Name, dst.Type())
					continue
				}
				if s := src.FieldByIndex(f.Index); !sameValue(s, d) {
					t.Errorf("%s.%s = %v, but the mapping makes %s.%s = %v", src.Type(), f.Name, s, dst.Type(), f.Name, d)
				}
			}
			for _, f := range reflect.VisibleFields(dst.Type()) {
				if !f.IsExported() || m.notMapped[f.Name] != "" {
					continue
				}
				if _, ok := src.Type().FieldByName(f.Name); !ok {
					t.Errorf("%s.%s is filled from no field of %s: map it in hostd/daemon, or say in notMapped why not", dst.Type(), f.Name, src.Type())
				}
			}
		})
	}
}

// fill sets every exported field of the struct ptr points to a value of its
// own (its name, its position, a pointer of its own), so that a field the
// mapping leaves out or copies from the wrong field shows.
func fill(t *testing.T, ptr any) {
	t.Helper()
	v := reflect.ValueOf(ptr).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		if !f.IsExported() {
			continue
		}
		field := v.FieldByIndex(f.Index)
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			field.Set(reflect.ValueOf(time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC)))
		case f.Type == reflect.TypeFor[*time.Location]():
			field.Set(reflect.ValueOf(time.FixedZone(f.Name, 3600*(i+1))))
		case f.Type.Kind() == reflect.String:
			field.SetString(f.Name)
		case f.Type.Kind() == reflect.Bool:
			field.SetBool(true)
		case field.CanInt():
			field.SetInt(int64(i + 1))
		case field.CanUint():
			field.SetUint(uint64(i + 1))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			field.Set(reflect.ValueOf([]string{f.Name}).Convert(f.Type))
		case f.Type.Kind() == reflect.Pointer:
			field.Set(reflect.New(f.Type.Elem()))
		default:
			t.Fatalf("fill: %s.%s is a %s, which fill cannot set yet: teach it", v.Type(), f.Name, f.Type)
		}
	}
}

// sameValue reports whether the mapping copied s into d: the same pointer,
// or an equal value.
func sameValue(s, d reflect.Value) bool {
	if s.Kind() == reflect.Pointer && d.Kind() == reflect.Pointer {
		return s.Pointer() == d.Pointer()
	}
	return reflect.DeepEqual(s.Interface(), d.Interface())
}
