# shellcheck shell=bash
# Running arm64 binaries on an x86 host: qemu-user via binfmt_misc, registered only for this build.

BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

_host_is_arm64() { [[ $(uname -m) == aarch64 ]]; }

# Registers qemu-aarch64 if needed and removes, at exit, only what it added.
binfmt_ensure() {
    if _host_is_arm64; then
        log "host is arm64: no emulation needed"
        return 0
    fi
    if ! mountpoint -q "$BINFMT_DIR"; then
        mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" || die "cannot mount binfmt_misc on $BINFMT_DIR"
        on_exit _binfmt_umount
        log "mounted binfmt_misc (unmounted again at exit)"
    fi
    if [[ -e $BINFMT_DIR/qemu-aarch64 ]]; then
        log "qemu-aarch64 already registered: left as it is"
        return 0
    fi
    [[ -r $BINFMT_CONF ]] || die "$BINFMT_CONF missing: apt-get install qemu-user-static"
    # F (fix binary): the kernel opens the interpreter now, so it works inside a chroot too.
    grep -q ':[A-Z]*F[A-Z]*$' "$BINFMT_CONF" || die "$BINFMT_CONF lacks the F flag; chroots would fail"
    cat "$BINFMT_CONF" >"$BINFMT_DIR/register" || die "cannot register qemu-aarch64 with binfmt_misc"
    on_exit _binfmt_remove
    log "registered qemu-aarch64 with binfmt_misc (removed again at exit)"
}

_binfmt_remove() {
    [[ -e $BINFMT_DIR/qemu-aarch64 ]] && echo -1 >"$BINFMT_DIR/qemu-aarch64"
    return 0
}

_binfmt_umount() {
    # only when nothing else registered an entry meanwhile
    local entries
    entries=$(find "$BINFMT_DIR" -mindepth 1 -maxdepth 1 ! -name register ! -name status | wc -l)
    if ((entries == 0)); then umount "$BINFMT_DIR"; fi
}
