# Sourced by the install scripts.  apt_update: one `apt-get update` per script;
# apt_install PACKAGE...: installs Debian packages (with sudo when not root) after it.
# Both fail with a clear message where apt-get is not available.
_apt() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$0: apt-get is not available; install what it needs by hand" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    sudo DEBIAN_FRONTEND=noninteractive "$@"
  else
    DEBIAN_FRONTEND=noninteractive "$@"
  fi
}

apt_update() {
  if [ -z "${_APT_UPDATED:-}" ]; then
    _apt apt-get update -qq
    _APT_UPDATED=1
  fi
}

apt_install() {
  apt_update
  _apt apt-get install -y -qq "$@" >/dev/null
}
