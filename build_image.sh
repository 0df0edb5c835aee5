#!/usr/bin/env bash
# Build the flashable arm64 image of edge-appliance (Debian bookworm, Python 3.11).
# Layout, stages and caching: images/README.md. Flashing and first boot: docs/flash.md.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES=$REPO/images
# shellcheck source=images/lib/common.sh
source "$IMAGES/lib/common.sh"
# shellcheck source=images/lib/binfmt.sh
source "$IMAGES/lib/binfmt.sh"
# shellcheck source=images/lib/rootfs.sh
source "$IMAGES/lib/rootfs.sh"
# shellcheck source=images/lib/disk.sh
source "$IMAGES/lib/disk.sh"
# shellcheck source=images/lib/bundle.sh
source "$IMAGES/lib/bundle.sh"

BOARD=qemu-virt
OUT=$REPO/build/image
VENDOR_DIR=""
CACHE=${APPLIANCE_IMAGE_CACHE:-/var/cache/edge-appliance}
SSH_KEY=""
KEEP_RAW=no
BUNDLE_ONLY=no
BUNDLE_VERSION=""
SIGNING_KEY=""
SIGNING_CERT=""
KEYRING_FILE=""
XZ_LEVEL=${XZ_LEVEL:-6}
# host tools -> Debian package, for the apt-get line printed when some are missing
declare -A TOOL_PACKAGES=(
    [mmdebstrap]=mmdebstrap [sfdisk]=fdisk [mkfs.ext4]=e2fsprogs [mkfs.vfat]=dosfstools
    [mcopy]=mtools [xz]=xz-utils [unshare]=util-linux [dpkg-query]=dpkg [python3]=python3
    [git]=git [tar]=tar [rauc]=rauc [mksquashfs]=squashfs-tools [openssl]=openssl
)

usage() {
    cat <<'EOF'
usage: ./build_image.sh [--board qemu-virt|rock5b] [--out DIR] [--vendor-dir DIR] [--cache DIR]
                        [--ssh-key FILE] [--keep-raw] [--bundle-version V] [--bundle-only]
                        [--signing-key KEY --signing-cert CERT [--keyring CA]]

  --board       qemu-virt (generic arm64 UEFI, Debian kernel; default) or rock5b (Radxa ROCK 5B)
  --out         where the image, its .sha256, manifest and update bundle go (default: build/image)
  --vendor-dir  rock5b: Image, rk3588-rock-5b.dtb, librknnrt.so, u-boot (see docs/flash.md)
  --cache       downloads and the Debian rootfs tarball, kept between builds
                (default: $APPLIANCE_IMAGE_CACHE or /var/cache/edge-appliance)
  --ssh-key     enable SSH for root with this public key file (keys only; off by default)
  --keep-raw    also keep the uncompressed .img and the slot's rootfs.ext4 (used by make image-test)
  --bundle-version  version of the system image and its RAUC bundle (default: the appliance's)
  --bundle-only     write only the signed update bundle (.raucb), no disk image
  --signing-key, --signing-cert  sign the bundle with this key/certificate (PEM) instead of the
                development key generated in CACHE/keys; --keyring: the CA certificate devices
                trust (/etc/rauc/keyring.pem; default: the signing certificate)

Needs root (mmdebstrap, chroot, binfmt) on Debian/Ubuntu with:
  apt-get install mmdebstrap qemu-user-static fdisk e2fsprogs dosfstools mtools xz-utils python3-venv git \
      rauc squashfs-tools openssl            (rock5b also: u-boot-tools)
EOF
}

parse_args() {
    while (($#)); do
        case $1 in
            --board) BOARD=${2:?--board needs a value}; shift 2 ;;
            --out) OUT=${2:?--out needs a directory}; shift 2 ;;
            --vendor-dir) VENDOR_DIR=${2:?--vendor-dir needs a directory}; shift 2 ;;
            --cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
            --ssh-key) SSH_KEY=${2:?--ssh-key needs a file}; shift 2 ;;
            --keep-raw) KEEP_RAW=yes; shift ;;
            --bundle-version) BUNDLE_VERSION=${2:?--bundle-version needs a value}; shift 2 ;;
            --bundle-only) BUNDLE_ONLY=yes; shift ;;
            --signing-key) SIGNING_KEY=${2:?--signing-key needs a file}; shift 2 ;;
            --signing-cert) SIGNING_CERT=${2:?--signing-cert needs a file}; shift 2 ;;
            --keyring) KEYRING_FILE=${2:?--keyring needs a file}; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
}

load_board() {
    local profile=$IMAGES/boards/$BOARD.sh
    [[ -f $profile ]] || die "unknown board '$BOARD'; boards: $(find "$IMAGES/boards" -name '*.sh' -printf '%f\n' | sed 's/\.sh$//' | sort | paste -sd' ')"
    # shellcheck source=images/boards/qemu-virt.sh
    source "$profile"
    [[ -z $VENDOR_DIR ]] || VENDOR_DIR=$(cd "$VENDOR_DIR" 2>/dev/null && pwd) || die "--vendor-dir: no such directory"
    board_check_vendor "$VENDOR_DIR"
    [[ -z $SSH_KEY || -s $SSH_KEY ]] || die "--ssh-key $SSH_KEY: no such file"
    log "board $BOARD: $BOARD_DESCRIPTION"
}

check_host() {
    ((EUID == 0)) || die "run as root (mmdebstrap, chroot and binfmt_misc need it): sudo ./build_image.sh ..."
    local tool missing=()
    for tool in "${!TOOL_PACKAGES[@]}"; do
        command -v "$tool" >/dev/null || missing+=("${TOOL_PACKAGES[$tool]}")
    done
    if ! _host_is_arm64 && [[ ! -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P && ! -x /usr/bin/qemu-aarch64-static ]]; then
        missing+=(qemu-user-static)
    fi
    python3 -c 'import ensurepip, tomllib' 2>/dev/null || missing+=(python3-venv)
    if ((${#missing[@]})); then
        die "missing host tools; install them with:
  apt-get install -y $(printf '%s\n' "${missing[@]}" | sort -u | paste -sd' ')"
    fi
    mkdir -p "$CACHE" "$OUT"
    exec 9>"$CACHE/.lock"
    flock -n 9 || die "another build is using the cache $CACHE"
    WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/appliance-image.XXXXXX")
    on_exit rm -rf --one-file-system "$WORK"
    APPLIANCE_VERSION=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")
    BUNDLE_VERSION=${BUNDLE_VERSION:-$APPLIANCE_VERSION}
    [[ $BUNDLE_VERSION =~ ^[A-Za-z0-9][A-Za-z0-9.+_~-]*$ ]] || die "--bundle-version '$BUNDLE_VERSION': letters, digits and .+_~- only"
    RAUC_COMPATIBLE=edge-appliance-$BOARD
    log "edge-appliance $APPLIANCE_VERSION, system $BUNDLE_VERSION, work dir $WORK, cache $CACHE"
    bundle_keys
}

# The lock against the pyproject.toml of the source copy that is built (not a file that may change)
check_lock() {
    python3 "$IMAGES/tools/wheels.py" check --board "$BOARD" --pyproject "$WORK/src/pyproject.toml" ||
        die "the wheel lock does not match pyproject.toml"
}

# The source as the working tree has it (tracked and new files, nothing .gitignore'd).
copy_source() {
    mkdir -p "$WORK/src"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        GIT_COMMIT=$(git -C "$REPO" rev-parse HEAD)
        GIT_DIRTY=$([[ -z $(git -C "$REPO" status --porcelain) ]] && echo false || echo true)
        SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct)
        # shellcheck disable=SC2016  # the inner script is for sh
        (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
            xargs -0 -r sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
            tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
    else
        GIT_COMMIT=unknown GIT_DIRTY=true SOURCE_DATE_EPOCH=0
        tar -C "$REPO" --exclude=.venv --exclude=.cache --exclude=build --exclude=data -cf - . |
            tar -C "$WORK/src" -xf -
    fi
    export SOURCE_DATE_EPOCH
    log "source: commit $GIT_COMMIT (uncommitted changes: $GIT_DIRTY)"
}

host_python() {
    HOSTPY=$CACHE/host-venv/bin/python
    [[ -x $HOSTPY ]] || python3 -m venv "$CACHE/host-venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    export PIP_CACHE_DIR=$CACHE/pip PIP_DISABLE_PIP_VERSION_CHECK=1
}

stage_wheels() {
    stage "arm64 wheels, the appliance wheel and the demo model"
    host_python
    local wheels=$CACHE/wheels-aarch64
    python3 "$IMAGES/tools/wheels.py" fetch --board "$BOARD" --python "$HOSTPY" --dest "$wheels" \
        --pyproject "$WORK/src/pyproject.toml" \
        >"$WORK/wheels.txt" || die "arm64 wheels: see the message above"
    mkdir -p "$WORK/stage/wheels" "$WORK/stage/models"
    xargs -I{} cp "$wheels/{}" "$WORK/stage/wheels/" <"$WORK/wheels.txt"
    log "$(wc -l <"$WORK/wheels.txt") locked wheels from $wheels"
    # the runtime only: the appliance (with its web UI as package data) and firmware-bridge; tools/ never
    "$HOSTPY" -m pip wheel -q --no-deps -w "$WORK/stage/wheels" "$WORK/src" "$WORK/src/firmware-bridge" \
        >"$WORK/pip-wheel.log" 2>&1 ||
        { tail -n 20 "$WORK/pip-wheel.log" >&2; die "building the appliance wheels failed"; }
    APPLIANCE_WHEEL=$(find "$WORK/stage/wheels" -name 'edge_appliance-*.whl' -printf '%f\n')
    log "built $APPLIANCE_WHEEL"
    "$HOSTPY" - "$WORK/src" "$CACHE/demo" "$WORK/stage/models" <<'PY' || die "fetching the demo face model failed"
import shutil, sys
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tools"]  # appliance_tools needs appliance.errors
from appliance_tools.demo.assets import fetch_mediapipe_models
face = fetch_mediapipe_models(Path(sys.argv[2]))["face_detection_short_range.tflite"]
shutil.copy(face, Path(sys.argv[3]) / face.name)
PY
}

stage_rootfs() {
    stage "Debian $DEBIAN_SUITE $DEBIAN_ARCH rootfs (mmdebstrap, cached)"
    binfmt_ensure
    rootfs_tarball
}

write_config() {
    local rootfs=$1 backends=$BOARD_BACKENDS
    if [[ $backends == *rknn* ]] && ! grep -q '"rknn"' "$WORK/src/appliance/backends/registry.py"; then
        warn "this appliance version has no rknn backend yet: the image uses LiteRT (CPU) only"
        backends='"litert"'
    fi
    mkdir -p "$rootfs/etc/appliance"
    cat >"$rootfs/etc/appliance/config.toml" <<EOF
# /etc/appliance/config.toml: written by build_image.sh for board $BOARD; every key: docs/config.md
# Check after editing: appliance check-config /etc/appliance/config.toml
[server]
host = "0.0.0.0"
port = 8080

[grpc]
enabled = true
host = "0.0.0.0"
port = 8001

[data]
dir = "/var/lib/appliance"

[source]
kind = "none"

[model]
name = "face"

[backend]
order = [$backends]
EOF
}

# systemd features that depend on the appliance version or on the board
write_units() {
    local rootfs=$1
    if grep -rqs NOTIFY_SOCKET "$WORK/src/appliance"; then
        mkdir -p "$rootfs/etc/systemd/system/appliance.service.d"
        # NotifyAccess=all: the server that sends READY/WATCHDOG is a child of the supervisor
        printf '[Service]\nType=notify\nNotifyAccess=all\nWatchdogSec=30\n' \
            >"$rootfs/etc/systemd/system/appliance.service.d/10-watchdog.conf"
        log "service watchdog on (the appliance sends sd_notify)"
    else
        warn "the appliance does not send sd_notify yet: service watchdog off (Type=exec)"
    fi
    if [[ -n $BOARD_RUNTIME_WATCHDOG ]]; then
        mkdir -p "$rootfs/etc/systemd/system.conf.d"
        printf '[Manager]\nRuntimeWatchdogSec=%s\nRebootWatchdogSec=2min\n' "$BOARD_RUNTIME_WATCHDOG" \
            >"$rootfs/etc/systemd/system.conf.d/10-watchdog.conf"
    fi
}

stage_tree() {
    stage "rootfs tree: extract, overlay, configuration"
    ROOTFS=$WORK/rootfs
    mkdir -p "$ROOTFS"
    tar -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include='*' -xpf "$ROOTFS_TARBALL"
    tar -C "$IMAGES/rootfs" --owner=0 --group=0 -cf - . | tar -C "$ROOTFS" --no-same-owner -xf -
    disk_fstab >"$ROOTFS/etc/fstab"
    mkdir -p "$ROOTFS/boot/firmware" "$ROOTFS/var/lib/appliance"
    mkdir -p "$ROOTFS/etc/rauc"
    bundle_system_conf >"$ROOTFS/etc/rauc/system.conf"
    install -m 0644 "$KEYRING" "$ROOTFS/etc/rauc/keyring.pem"
    # what this slot is: read by `appliance slots` and /api/v1/status
    printf 'VERSION=%s\nAPPLIANCE_VERSION=%s\nBOARD=%s\nCOMMIT=%s\nCOMPATIBLE=%s\n' "$BUNDLE_VERSION" \
        "$APPLIANCE_VERSION" "$BOARD" "$GIT_COMMIT" "$RAUC_COMPATIBLE" >"$ROOTFS/etc/appliance-image"
    write_config "$ROOTFS"
    write_units "$ROOTFS"
    SSH_ENABLED=no
    if [[ -n $SSH_KEY ]]; then
        install -D -m 0600 "$SSH_KEY" "$ROOTFS/root/.ssh/authorized_keys"
        SSH_ENABLED=yes
    fi
    mkdir -p "$ROOTFS/tmp/build"
    cp -r "$WORK/stage/." "$ROOTFS/tmp/build/"
    cp "$IMAGES/tools/configure-rootfs.sh" "$ROOTFS/tmp/build/"
}

stage_chroot() {
    stage "install the appliance in the image (chroot, emulated)"
    local extra=""
    ((${#BOARD_WHEEL_EXTRAS[@]} == 0)) || extra="${BOARD_WHEEL_EXTRAS[*]}"
    chroot_run "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        APPLIANCE_VERSION="$APPLIANCE_VERSION" VENV_NAME="$APPLIANCE_VERSION" SSH_ENABLED="$SSH_ENABLED" \
        EXTRA_REQUIREMENTS="$extra" /bin/bash /tmp/build/configure-rootfs.sh ||
        die "configuring the rootfs in the chroot failed (output above)"
    chroot_run "$ROOTFS" /opt/appliance/current/bin/appliance check-config /etc/appliance/config.toml >/dev/null ||
        die "the image's /etc/appliance/config.toml is invalid"
    rm -rf "$ROOTFS/tmp/build"
    DATA_OWNER=$(stat -c %u:%g "$ROOTFS/var/lib/appliance")
    DATA_TREE=$WORK/data
    mv "$ROOTFS/var/lib/appliance" "$DATA_TREE"
    mkdir -m 0750 "$ROOTFS/var/lib/appliance"
    # /etc/appliance (config.toml) lives on the data partition (a bind mount, see disk_fstab); the
    # slot keeps the empty mount point and a copy of the factory config for reference
    install -D -m 0644 "$ROOTFS/etc/appliance/config.toml" "$ROOTFS/usr/share/appliance/config.toml"
    mv "$ROOTFS/etc/appliance" "$DATA_TREE/etc"
    mkdir -m 0750 "$ROOTFS/etc/appliance"
    # RAUC's slot status (root's, readable by the service); the slot events, update staging and the
    # reboot request (the service's, written by root too)
    mkdir -m 0755 "$DATA_TREE/rauc"
    install -d -m 0750 -o "${DATA_OWNER%:*}" -g "${DATA_OWNER#*:}" "$DATA_TREE/system"
}

stage_boot() {
    stage "boot files ($BOARD)"
    BOOT_TREE=$WORK/boot
    mkdir -p "$BOOT_TREE"
    board_prepare_rootfs "$ROOTFS"
    board_boot_files "$ROOTFS" "$BOOT_TREE"
    rootfs_dpkg_list "$ROOTFS" >"$WORK/dpkg.txt"
}

stage_image() {
    stage "slot image and disk image (GPT: boot, rootfs A, rootfs B, data)"
    NAME=appliance-$BUNDLE_VERSION-$BOARD
    ROOTFS_IMAGE=$WORK/rootfs.ext4
    disk_rootfs_image "$ROOTFS" "$ROOTFS_IMAGE"
    log "slot file system image: $ROOTFS_IMAGE_MIB MiB"
    [[ $BUNDLE_ONLY == no ]] || return 0
    DISK=$WORK/disk.img
    bundle_factory_status "$ROOTFS_IMAGE" >"$DATA_TREE/rauc/central.raucs"
    disk_build "$DISK" "$BOOT_TREE" "$ROOTFS_IMAGE" "$DATA_TREE" "$DATA_OWNER"
    board_write_bootloader "$DISK"
}

# Outputs appear under their final names only when complete.
stage_outputs() {
    stage "compress, checksum, manifest, signed update bundle"
    local image=$OUT/$NAME.img.xz bundle=$OUT/$NAME.raucb
    python3 "$IMAGES/tools/manifest.py" --board "$BOARD" --version "$APPLIANCE_VERSION" \
        --git-commit "$GIT_COMMIT" --git-dirty "$GIT_DIRTY" --dpkg "$WORK/dpkg.txt" \
        --lock "$IMAGES/wheels/$BOARD.lock" --wheel "$WORK/stage/wheels/$APPLIANCE_WHEEL" \
        --models "$DATA_TREE/models" --rootfs-key "$(rootfs_key)" --layout "${DISK_LAYOUT:-bundle only}" \
        ${VENDOR_DIR:+--vendor "$VENDOR_DIR"} >"$WORK/manifest.json"
    on_exit rm -f "$bundle.partial" "$image.partial"
    bundle_write "$ROOTFS_IMAGE" "$bundle.partial"
    mv "$bundle.partial" "$bundle"
    (cd "$OUT" && sha256sum "$NAME.raucb" >"$NAME.raucb.sha256")
    mv "$WORK/manifest.json" "$OUT/$NAME.manifest.json"
    if [[ $KEEP_RAW == yes ]]; then mv "$ROOTFS_IMAGE" "$OUT/$NAME.rootfs.ext4"; fi
    if [[ $BUNDLE_ONLY == no ]]; then
        run_child xz -T0 "-$XZ_LEVEL" --stdout "$DISK" >"$image.partial" || die "xz failed"
        mv "$image.partial" "$image"
        (cd "$OUT" && sha256sum "$NAME.img.xz" >"$NAME.img.xz.sha256")
        local raw_size
        raw_size=$(du -h --apparent-size "$DISK" | cut -f1)
        if [[ $KEEP_RAW == yes ]]; then mv "$DISK" "$OUT/$NAME.img"; fi
        log "$(du -h "$image" | cut -f1) $image (raw $raw_size), with .sha256"
    fi
    stage_done
    log "$OUT/$NAME.manifest.json"
    log "$(du -h "$bundle" | cut -f1) $bundle: signed update (rauc install / appliance update), compatible $RAUC_COMPATIBLE"
}

main() {
    parse_args "$@"
    install_traps
    stage "check host and inputs"
    load_board
    check_host
    copy_source
    check_lock
    stage_rootfs
    stage_wheels
    stage_tree
    stage_chroot
    stage_boot
    stage_image
    stage_outputs
    local built=$NAME.img.xz
    [[ $BUNDLE_ONLY == no ]] || built=$NAME.raucb
    printf '==> built %s in %s\n' "$built" "$(_elapsed $(($(date +%s) - BUILD_START)))" >&2
}

main "$@"; exit  # one line: bash stops reading this file here, so editing it mid-build is safe
