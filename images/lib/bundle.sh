# shellcheck shell=bash
# shellcheck disable=SC2034  # KEYRING is read by build_image.sh
# Signed RAUC bundles: the signing key, the device's keyring (/etc/rauc/keyring.pem), the bundle.
#
# Without --signing-key/--signing-cert the build uses a development CA and signing key that it
# generates on first use in CACHE/keys (never in git): every image and bundle built with that cache
# trusts, and is signed by, that key. A vendor passes its own key and certificate (and the CA that
# devices trust, --keyring); see images/README.md, "Signing keys".

# bundle_keys: sets SIGN_KEY, SIGN_CERT and KEYRING
bundle_keys() {
    if [[ -n $SIGNING_KEY || -n $SIGNING_CERT ]]; then
        [[ -s $SIGNING_KEY && -s $SIGNING_CERT ]] || die "--signing-key and --signing-cert go together (both files)"
        SIGN_KEY=$SIGNING_KEY SIGN_CERT=$SIGNING_CERT KEYRING=${KEYRING_FILE:-$SIGNING_CERT}
        log "signing with $SIGN_CERT (keyring $KEYRING)"
        return 0
    fi
    local dir=$CACHE/keys
    SIGN_KEY=$dir/dev-signing.key.pem SIGN_CERT=$dir/dev-signing.cert.pem KEYRING=$dir/dev-ca.cert.pem
    if [[ -s $SIGN_KEY && -s $SIGN_CERT && -s $KEYRING ]]; then
        log "signing with the development key in $dir"
        return 0
    fi
    bundle_make_keys "$dir" "edge-appliance development" || die "generating the development key failed"
    warn "generated a development signing key in $dir: devices built with it accept bundles signed by it only"
}

# bundle_make_keys DIR NAME: a CA and a signing key/certificate issued by it (EC P-256, 100 years)
bundle_make_keys() {
    local dir=$1 name=$2
    mkdir -p "$dir"
    chmod 0700 "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
        -subj "/O=$name/CN=$name CA" -keyout "$dir/dev-ca.key.pem" -out "$dir/dev-ca.cert.pem" 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/O=$name/CN=$name bundle signing" -keyout "$dir/dev-signing.key.pem" \
            -out "$dir/dev-signing.csr" 2>/dev/null &&
        openssl x509 -req -in "$dir/dev-signing.csr" -CA "$dir/dev-ca.cert.pem" -CAkey "$dir/dev-ca.key.pem" \
            -CAcreateserial -days 36500 -out "$dir/dev-signing.cert.pem" \
            -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n') 2>/dev/null &&
        rm -f "$dir/dev-signing.csr" &&
        chmod 0600 "$dir"/*.key.pem
}

# bundle_write ROOTFS_IMAGE OUT: a RAUC bundle (format plain) holding the rootfs image of one slot
bundle_write() {
    local rootimg=$1 out=$2 dir=$WORK/bundle
    rm -rf "$dir" "$out"
    mkdir -p "$dir"
    ln "$rootimg" "$dir/rootfs.ext4" 2>/dev/null || cp --sparse=always "$rootimg" "$dir/rootfs.ext4"
    cat >"$dir/manifest.raucm" <<MANIFEST
[update]
compatible=$RAUC_COMPATIBLE
version=$BUNDLE_VERSION
description=edge-appliance $APPLIANCE_VERSION for $BOARD (commit $GIT_COMMIT)
build=$GIT_COMMIT

[bundle]
format=plain

[image.rootfs]
filename=rootfs.ext4
MANIFEST
    # lz4: several times faster than mksquashfs' gzip to make and to unpack on the device, ~30 %
    # bigger; BUNDLE_COMPRESSION=xz for the smallest download (the kernel reads gzip, lz4, xz, zstd)
    run_child rauc bundle --cert="$SIGN_CERT" --key="$SIGN_KEY" --keyring="$KEYRING" \
        --mksquashfs-args="-comp ${BUNDLE_COMPRESSION:-lz4}" "$dir" "$out" \
        >"$WORK/rauc-bundle.log" 2>&1 || { tail -n 20 "$WORK/rauc-bundle.log" >&2; die "rauc bundle failed"; }
    rm -rf "$dir"
}

# bundle_system_conf: /etc/rauc/system.conf of the image
bundle_system_conf() {
    cat <<CONF
# RAUC on edge-appliance ($BOARD): two rootfs slots, the bundle must carry compatible=$RAUC_COMPATIBLE
# and be signed by a key that /etc/rauc/keyring.pem trusts. images/README.md, "A/B slots".
[system]
compatible=$RAUC_COMPATIBLE
bootloader=$BOARD_BOOTLOADER
$( [[ $BOARD_BOOTLOADER == grub ]] && echo "grubenv=/boot/firmware/EFI/BOOT/grubenv")
$( [[ $BOARD_BOOTLOADER == uboot ]] && printf 'boot-attempts=%s\nboot-attempts-primary=%s' "$BOARD_BOOT_ATTEMPTS" "$BOARD_BOOT_ATTEMPTS")
# slot status (installed bundle versions, hashes, times) on the data partition: kept across updates
data-directory=/var/lib/appliance/rauc
bundle-formats=plain verity

[keyring]
path=/etc/rauc/keyring.pem

[slot.rootfs.0]
device=$BOARD_SLOT_A_DEVICE
type=ext4
bootname=A
resize=true

[slot.rootfs.1]
device=$BOARD_SLOT_B_DEVICE
type=ext4
bootname=B
resize=true
CONF
}

# bundle_factory_status: RAUC's status file for the factory image (slot A holds BUNDLE_VERSION)
bundle_factory_status() {
    local rootimg=$1
    cat <<STATUS
[slot.rootfs.0]
bundle.compatible=$RAUC_COMPATIBLE
bundle.version=$BUNDLE_VERSION
bundle.description=factory image
bundle.build=$GIT_COMMIT
status=ok
sha256=$(sha256 "$rootimg")
size=$(stat -c %s "$rootimg")
installed.timestamp=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
installed.count=1
STATUS
}
