#!/usr/bin/env bash
# Installs a headless Java runtime from Debian's packages when `java` is missing or older
# than 17: the Spark tests (tox -e spark, tests/spark) run a real local Spark session, and
# Spark 4 needs Java 17+.  Called by .ci/run before tox.
set -euo pipefail

major() {
  # "openjdk version "17.0.15" ..." -> 17; "java version "1.8.0_..."" -> 8
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' | head -n 1 |
    awk '{ print ($1 == 1 ? $2 : $1) }'
}

if command -v java >/dev/null 2>&1; then
  found=$(major || true)
  if [ -n "$found" ] && [ "$found" -ge 17 ]; then
    exit 0
  fi
  echo "install-java: java is version ${found:-unknown}; Spark needs 17+" >&2
fi
source "$(dirname "$0")/apt.sh"
apt_update
# Debian 12 (bookworm) ships openjdk-17; later releases may not: take their default JRE.
if apt-cache policy openjdk-17-jre-headless 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  package=openjdk-17-jre-headless
else
  package=default-jre-headless
fi
apt_install "$package"
java -version
