# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # ROOTFS_TARBALL is read by build_image.sh; hooks are literal
# The Debian base: one mmdebstrap run, cached as a tarball keyed by everything that shapes it.

DEBIAN_SUITE=bookworm          # Python 3.11: what rknn-toolkit-lite2 supports
DEBIAN_ARCH=arm64
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
COMMON_PACKAGES=(
    systemd-sysv udev dbus kmod iproute2 netbase ca-certificates procps
    systemd-timesyncd systemd-resolved openssh-server
    python3 python3-venv
    e2fsprogs dosfstools fdisk
    rauc rauc-service
)
# documentation, man pages and translations are not needed on an appliance
DPKG_OPTIONS=(
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/locale/*'
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
)

rootfs_packages() {
    printf '%s\n' "${COMMON_PACKAGES[@]}" "${BOARD_PACKAGES[@]}" | sort -u
}

_mirrors() {
    printf '%s\n' \
        "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" \
        "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main" \
        "deb $DEBIAN_SECURITY $DEBIAN_SUITE-security main"
}

_tirfs_conf() {
    printf 'AUTO_MODULES=no\nINCLUDE_MODULES="%s"\nMICROCODE=no\nDEBUG=no\n' "$BOARD_INITRAMFS_MODULES"
}

# The cache key: suite, arch, mirrors, packages, dpkg options and the initramfs configuration.
rootfs_key() {
    {
        echo "recipe 1 $DEBIAN_SUITE $DEBIAN_ARCH"
        _mirrors
        rootfs_packages
        printf '%s\n' "${DPKG_OPTIONS[@]}"
        _tirfs_conf
    } | sha256sum | cut -c1-16
}

# rootfs_tarball: sets ROOTFS_TARBALL to the cached tarball, building it when missing.
rootfs_tarball() {
    local dir=$CACHE/rootfs key tarball mirrors
    key=$(rootfs_key)
    tarball=$dir/$DEBIAN_SUITE-$DEBIAN_ARCH-$key.tar
    ROOTFS_TARBALL=$tarball
    if [[ -s $tarball ]]; then
        log "cached: $tarball"
        return 0
    fi
    mkdir -p "$dir"
    log "building $tarball with mmdebstrap (a few minutes; log: $WORK/mmdebstrap.log)"
    _tirfs_conf >"$WORK/tiny-initramfs.conf"
    local args=(
        --variant=apt --arch="$DEBIAN_ARCH" --format=tar
        --aptopt='APT::Install-Recommends "false"'
        --include="$(rootfs_packages | paste -sd,)"
        # tiny-initramfs reads its configuration when the kernel's postinst calls it
        --setup-hook='mkdir -p "$1/etc/tiny-initramfs"'
        --setup-hook="cp '$WORK/tiny-initramfs.conf' \"\$1/etc/tiny-initramfs/tiny-initramfs.conf\""
        --customize-hook='rm -f "$1"/var/lib/apt/lists/*_Packages "$1"/var/cache/apt/*.bin'
    )
    local opt
    for opt in "${DPKG_OPTIONS[@]}"; do args+=(--dpkgopt="$opt"); done
    mapfile -t mirrors < <(_mirrors)
    on_exit rm -f "$tarball.partial"
    if ! run_child mmdebstrap "${args[@]}" "$DEBIAN_SUITE" "$tarball.partial" "${mirrors[@]}" \
        >"$WORK/mmdebstrap.log" 2>&1; then
        tail -n 30 "$WORK/mmdebstrap.log" >&2
        rm -f "$tarball.partial"
        die "mmdebstrap failed (last lines above; full log in $WORK/mmdebstrap.log)"
    fi
    mv "$tarball.partial" "$tarball"
    # older tarballs of the same suite and arch are superseded
    find "$dir" -name "$DEBIAN_SUITE-$DEBIAN_ARCH-*.tar" ! -name "$(basename "$tarball")" \
        -mtime +7 -delete
}

# The dpkg database of the tree: "name version" lines, sorted (for the manifest).
rootfs_dpkg_list() {
    dpkg-query --admindir="$1/var/lib/dpkg" -W -f '${Package} ${Version}\n' | sort
}

# chroot_run ROOTFS CMD...: run CMD in the tree, with /dev and /proc mounted, inside private mount
# and PID namespaces: the mounts vanish with the namespace, and killing the namespace's init (the
# cleanup does) ends every process in it, so nothing is left behind even when the build is killed.
# No /sys: LiteRT's cpuinfo reads it next to qemu-user's (host) /proc/cpuinfo and crashes; without
# it, it only complains ("Error in cpuinfo") and falls back.
chroot_run() {
    local rootfs=$1 status=0
    shift
    CHILD_NAMESPACE=yes
    run_child unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
        set -e
        root=$1; shift
        mount --rbind /dev "$root/dev"
        mount -t proc proc "$root/proc"
        mount -t tmpfs tmpfs "$root/run"
        exec chroot "$root" "$@"
    ' chroot_run "$rootfs" "$@" || status=$?
    CHILD_NAMESPACE=no
    return "$status"
}
