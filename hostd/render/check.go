package render

// This file checks templates before any runner sees them.

import (
	"errors"
	"fmt"
	"os"

	ctconfig "github.com/hashicorp/consul-template/config"
	cttemplate "github.com/hashicorp/consul-template/template"
)

// Validate reports every template that cannot render whatever Vault
// returns: bad fields, unreadable source, syntax errors, denied functions,
// errors before any data is available.
func Validate(templates []Template) error {
	var errs []error
	for i, t := range templates {
		t, err := loadTemplate(t)
		if err == nil {
			err = checkTemplate(t)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("template %d (%s): %w", i+1, t.Destination, err))
		}
	}
	return errors.Join(errs...)
}

// checkTemplate runs t the way a new runner's first pass does: with no data
// at all. A template that errors here errors on every runner's first pass,
// and consul-template (v0.42.1) crashes when such a template is evaluated a
// second time, so it must not be given to a runner.
func checkTemplate(t Template) error {
	tmpl, err := cttemplate.NewTemplate(&cttemplate.NewTemplateInput{
		Contents:         t.Contents,
		Destination:      t.Destination,
		ErrMissingKey:    t.ErrorOnMissingKey,
		LeftDelim:        "{{",
		RightDelim:       "}}",
		FunctionDenylist: deniedFunctions,
	})
	if err != nil {
		return err
	}
	cfg := ctconfig.DefaultConfig()
	cfg.Finalize()
	if _, err := tmpl.Execute(&cttemplate.ExecuteInput{Brain: cttemplate.NewBrain(), Config: cfg}); err != nil {
		return fmt.Errorf("cannot render: %s", redact(err.Error(), t.Contents))
	}
	return nil
}

// loadTemplate validates t. The renderer reads no template file: config
// read each source once, into Contents, when it loaded.
func loadTemplate(t Template) (Template, error) {
	switch {
	case t.Destination == "":
		return t, errors.New("destination is required")
	case t.Contents == "":
		return t, fmt.Errorf("%s: contents are required", t.Destination)
	case t.Perms&^os.ModePerm != 0:
		return t, fmt.Errorf("%s: perms %#o: only permission bits are allowed", t.Destination, uint32(t.Perms))
	}
	return t, nil
}
