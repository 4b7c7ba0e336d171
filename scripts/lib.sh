# Shared by the install scripts (source it): apt installs that start no service, and pinned virtualenvs.

# The command prefix that runs apt as root (sudo when not root).
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# apt_install_missing TAG PACKAGE...: installs the packages that are not installed yet. Packages such as prometheus,
# redis-server or nginx would start system services on install; btcml's tests and deploy/stack.sh run them
# themselves on their own ports, so service starts are refused while it installs.
apt_install_missing() {
    local tag=$1 p missing=()
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
        echo "$tag: not root and no sudo; install: ${missing[*]}" >&2
        return 1
    fi
    echo "$tag: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    local policy=/usr/sbin/policy-rc.d added_policy=false status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
        "${sudo_cmd[@]}" chmod +x "$policy"
        added_policy=true
    fi
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    if $added_policy; then "${sudo_cmd[@]}" rm -f "$policy"; fi
    return "$status"
}

# venv_is_current EXECUTABLE PINS MARKER: true when the virtualenv's EXECUTABLE exists and MARKER (the copy of PINS
# taken when it was installed) is PINS byte for byte; venv_mark_current PINS MARKER takes that copy.
venv_is_current() { [ -x "$1" ] && cmp -s "$2" "$3" 2>/dev/null; }
venv_mark_current() { cp "$1" "$2"; }
