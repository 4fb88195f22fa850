#!/usr/bin/env sh
# Installs what building the OpenFX effect needs (Debian 12 / Ubuntu package names), only
# the packages that are missing. As root (CI) it installs them; as anyone else it says
# which to install and carries on (the OFX tests then skip, naming them; with CI=true they
# fail). The README's test command runs it, so a fresh clone builds the bundle in the suite.
set -eu
PACKAGES="cmake g++ pkg-config libzmq3-dev cppzmq-dev libmsgpack-cxx-dev"
command -v dpkg-query >/dev/null 2>&1 || { echo "build-deps.sh: not a Debian system; install: $PACKAGES" >&2; exit 0; }
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "The OpenFX effect's tests need:$missing (sudo apt-get install$missing)" >&2
  exit 0
fi
echo "Installing the OpenFX effect's build dependencies:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
