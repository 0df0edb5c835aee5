#!/bin/bash
# Runs inside the arm64 chroot (under qemu-user on an x86 host), called by build_image.sh.
# Input: /tmp/build/{wheels/,models/} and the environment below. Installs the appliance into a
# venv, creates its user, registers the demo face model in /var/lib/appliance and seals the tree.
set -euo pipefail

: "${APPLIANCE_VERSION:?}" "${VENV_NAME:?}" "${SSH_ENABLED:?}"
BUILD=/tmp/build
PREFIX=/opt/appliance
VENV=$PREFIX/venvs/$VENV_NAME
DATA=/var/lib/appliance

step() { printf '    chroot: %s\n' "$*" >&2; }

create_user() {
    step "user appliance (groups video, dialout; no password, no shell)"
    getent group video >/dev/null || groupadd --system video
    getent group dialout >/dev/null || groupadd --system dialout
    useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
        --groups video,dialout --comment "edge-appliance service" appliance
}

install_venv() {
    step "venv $VENV from $(find "$BUILD/wheels" -name '*.whl' | wc -l) wheels (offline)"
    local extra
    read -ra extra <<<"${EXTRA_REQUIREMENTS:-}"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
        --find-links "$BUILD/wheels" "edge-appliance==$APPLIANCE_VERSION" "${extra[@]}"
    # the wheel carries the web UI (appliance.web); the workbench (edge-appliance-tools) and py-spy are
    # not runtime dependencies: make sure neither came in
    if "$VENV/bin/python" -I -c 'import appliance_tools' 2>/dev/null || [[ -e $VENV/bin/py-spy ]]; then
        echo "configure-rootfs: the venv holds development tools (appliance_tools or py-spy)" >&2
        exit 1
    fi
    ln -sfn "venvs/$VENV_NAME" "$PREFIX/current"
    ln -sf "$PREFIX/current/bin/appliance" /usr/local/bin/appliance
}

register_model() {
    step "demo face model in $DATA (validated with LiteRT, emulated)"
    mkdir -p "$DATA"
    printf 'face\n' >"$BUILD/models/face.labels"
    APPLIANCE_LOG_LEVEL=ERROR "$VENV/bin/appliance" models add \
        "$BUILD/models/face_detection_short_range.tflite" --data-dir "$DATA" \
        --task detect --name face --labels "$BUILD/models/face.labels" \
        --mean 127.5,127.5,127.5 --std 127.5,127.5,127.5 --resize letterbox --score 0.5 \
        --description "BlazeFace short range (MediaPipe 0.10.21)" --activate \
        >/dev/null 2>"$BUILD/models-add.log" || { cat "$BUILD/models-add.log" >&2; exit 1; }
    chown -R appliance:appliance "$DATA"
    chmod 0750 "$DATA"
}

config_access() {
    step "/etc/appliance writable by the service (settings saved from the web UI)"
    # the appliance rewrites its config atomically: a temporary file in the same folder, renamed
    chown -R appliance:appliance /etc/appliance
    chmod 0750 /etc/appliance
    chmod 0640 /etc/appliance/config.toml
}

enable_units() {
    step "systemd units"
    systemctl enable --quiet appliance.service appliance-grow-data.service \
        appliance-slot-gate.service appliance-reboot.path \
        systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
    # the slot gate marks the slot good once the appliance is healthy; RAUC's own unit would mark
    # every boot good as soon as it reaches boot-complete.target
    if [[ -e /lib/systemd/system/rauc-mark-good.service || -e /usr/lib/systemd/system/rauc-mark-good.service ]]; then
        systemctl mask --quiet rauc-mark-good.service
    fi
    if [[ $SSH_ENABLED == yes ]]; then
        systemctl enable --quiet ssh.service
    else
        systemctl disable --quiet ssh.service
    fi
}

seal() {
    step "seal: no passwords, no host keys, empty machine-id"
    passwd --lock root >/dev/null
    if awk -F: '$2 !~ /^[!*]/ && $2 != "" {found=1} END {exit !found}' /etc/shadow; then
        echo "an account has a password hash in /etc/shadow" >&2
        exit 1
    fi
    rm -f /etc/ssh/ssh_host_*
    : >/etc/machine-id
    rm -f /var/lib/dbus/machine-id
    rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /root/.cache
}

create_user
install_venv
register_model
config_access
enable_units
seal
