#!/bin/sh
# Installs the Debian packages in infra/deps.txt that are missing.
# As root it runs apt-get; otherwise it prints the command to run.
set -eu
cd "$(dirname "$0")/../.."
missing=""
for p in $(grep -v '^#' infra/deps.txt); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "moonport needs these Debian packages:$missing" >&2
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# the postgres and redis packages must not start system-wide servers we do not use
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
exit 0
