#!/bin/sh
# Installs the Debian packages of the reader differential suite when any is
# missing: the readers themselves and the recording upstream. Runs apt-get
# only as root; otherwise prints the command to run and fails.
# (python3-orjson is not in Debian 12: the suite skips orjson and says so.)
PKGS="python3 python3-ujson python3-simplejson python3-pandas nodejs jq
golang-go default-jdk-headless libjackson2-databind-java libgoogle-gson-java
gunicorn python3-flask"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
	echo "apt-get install failed for:$missing" >&2
	exit 1
}
exit 0
