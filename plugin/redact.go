package plugin

import (
	"fmt"
	"io"
	"strconv"
)

// formatRedacted prints v's String, which leaves out the secret v holds,
// for every fmt verb and flag (%q quotes it). Without it, a verb String
// does not answer (%d, %o) prints the fields as they are, secret and all.
//
// A type that holds a secret-holding type in a field needs a Format of its
// own too: fmt prints a field's value by reflection, without the field
// type's Format, whenever the field is unexported.
func formatRedacted(f fmt.State, verb rune, v fmt.Stringer) {
	s := v.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}
