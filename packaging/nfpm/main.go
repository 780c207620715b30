// Command nfpm builds hostd's .deb and .rpm packages from packaging/nfpm.yaml
// with nfpm's packager libraries, so a release needs no downloaded tool.
//
// It lives in the packaging module to keep nfpm's dependencies out of the product's
// go.mod. It only packages files that the release has already built; it does
// not build, sign or publish anything.
//
// Usage:
//
//	go run ./nfpm -config nfpm.yaml -target DIR -version 1.2.3 [-packagers deb,rpm]
//
// Relative "src" paths in the config are read relative to the config file's
// directory; ${NAME} in a "src" marked "expand: true" comes from the environment.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nfpm:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("nfpm", flag.ContinueOnError)
	configPath := fs.String("config", "nfpm.yaml", "nfpm config file")
	target := fs.String("target", ".", "directory to write the packages to")
	version := fs.String("version", "", "package version (semver, e.g. 1.2.3 or 0.0.0-gabc1234)")
	packagers := fs.String("packagers", "deb,rpm", "comma-separated packagers to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("-version is required")
	}
	configAbs, err := filepath.Abs(*configPath)
	if err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	targetAbs, err := filepath.Abs(*target)
	if err != nil {
		return fmt.Errorf("target path: %w", err)
	}
	if err := os.MkdirAll(targetAbs, 0o755); err != nil {
		return fmt.Errorf("create target directory: %w", err)
	}
	config, err := nfpm.ParseFileWithEnvMapping(configAbs, envWithVersion(*version))
	if err != nil {
		return fmt.Errorf("parse %s: %w", *configPath, err)
	}
	// Sources in the config are relative to the config file, not to the caller.
	if err := os.Chdir(filepath.Dir(configAbs)); err != nil {
		return fmt.Errorf("enter config directory: %w", err)
	}
	for _, format := range strings.Split(*packagers, ",") {
		path, err := buildPackage(&config, strings.TrimSpace(format), targetAbs)
		if err != nil {
			return fmt.Errorf("%s package: %w", format, err)
		}
		fmt.Println(path)
	}
	return nil
}

// envWithVersion maps ${VERSION} to the given version and every other name to
// the environment.
func envWithVersion(version string) func(string) string {
	return func(name string) string {
		if name == "VERSION" {
			return version
		}
		return os.Getenv(name)
	}
}

// buildPackage writes one package of the given format into dir and returns its path.
func buildPackage(config *nfpm.Config, format, dir string) (string, error) {
	info, err := config.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, packager.ConventionalFileName(info))
	info.Target = path
	if err := writePackage(packager, info, path); err != nil {
		return "", err
	}
	return path, nil
}

// writePackage writes the package to a temporary file and renames it into
// place, so a failed run never leaves a truncated package behind.
func writePackage(packager nfpm.Packager, info *nfpm.Info, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pkg-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := packager.Package(info, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
