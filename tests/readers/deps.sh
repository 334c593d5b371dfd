#!/bin/sh
# Installs the Debian packages of the reader differential suite when any is
# missing: the readers themselves and the recording upstream, through the
# project's one installer (.ci/deps.sh: apt-get only as root; otherwise it
# prints the command to run and fails).
# (python3-orjson is not in Debian 12: the suite skips orjson and says so.)
here=$(cd "$(dirname "$0")" && pwd)
CG_PKGS="python3 python3-ujson python3-simplejson python3-pandas nodejs jq
golang-go default-jdk-headless libjackson2-databind-java libgoogle-gson-java
gunicorn python3-flask" exec sh "$here/../../.ci/deps.sh"
