#!/bin/sh
# version.sh: print the release version, a semantic version derived from
# `git describe --tags --always --dirty`, as Vault (plugin versions) and the
# package formats need it:
#
#   v1.2.3 (tag)              -> 1.2.3
#   v1.2.3-4-gabc1234         -> 1.2.3-4.gabc1234
#   abc1234 (no tag yet)      -> 0.0.0-gabc1234
#   ...-dirty                 -> ...-dirty, or .dirty after a pre-release
#
# Hyphens inside the pre-release become dots so that rpm (no '-' allowed)
# and dpkg (last '-' starts the revision) read the same version.
set -eu

describe=$(git describe --tags --always --dirty --abbrev=7 2>/dev/null || echo unknown)
describe=${describe#v}

dirty=
case "$describe" in
    *-dirty) dirty=yes; describe=${describe%-dirty} ;;
esac

if printf '%s\n' "$describe" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+'; then
    core=$(printf '%s\n' "$describe" | sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+).*/\1/')
    pre=$(printf '%s\n' "$describe" | sed -E 's/^[0-9]+\.[0-9]+\.[0-9]+-?//; s/-/./g')
else
    core=0.0.0
    pre=g$(printf '%s\n' "$describe" | sed -E 's/[^0-9A-Za-z]+/./g')
fi

if [ -n "$dirty" ]; then
    pre=${pre:+$pre.}dirty
fi

echo "$core${pre:+-$pre}"
