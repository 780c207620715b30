package daemon

import (
	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// This file maps the configuration onto each package's own options, so no
// package but this one depends on hostd/config's layout.

func authOptions(cfg *config.Config, client *api.Client, d *daemon) auth.Options {
	a := cfg.AutoAuth
	return auth.Options{
		Client:                         client,
		Method:                         a.Method,
		MountPath:                      a.MountPath,
		RoleIDFile:                     a.RoleIDFile,
		SecretIDFile:                   a.SecretIDFile,
		RemoveSecretIDFileAfterReading: a.RemoveSecretIDFileAfterReading,
		CertName:                       a.CertName,
		TokenFile:                      a.TokenFile,
		MaxBackoff:                     cfg.TemplateConfig.MaxBackoff,
		Sink:                           d.sink,
		Logger:                         d.logger.With("component", "auth"),
	}
}

func restartOptions(cfg config.Restart) restart.Options {
	return restart.Options{Bus: cfg.Bus, JobTimeout: cfg.JobTimeout}
}
