# shellcheck shell=bash
# shellcheck disable=SC2034  # read by build_image.sh, which sources this profile
# Board profile: Radxa ROCK 5B (RK3588). Kernel, device tree, u-boot and the NPU runtime come from
# --vendor-dir (see docs/flash.md for where to get them); u-boot reads extlinux/extlinux.conf from
# the boot partition (GPT attribute LegacyBIOSBootable), the kernel mounts root=PARTUUID= itself.

BOARD_DESCRIPTION="Radxa ROCK 5B (RK3588), vendor kernel + u-boot, NPU runtime"
BOARD_PACKAGES=()
BOARD_INITRAMFS_MODULES=""
BOARD_CONSOLE="ttyS2,1500000"
BOARD_BACKENDS='"rknn", "litert"'
BOARD_RUNTIME_WATCHDOG="30s"
# Rockchip boot ROM: idbloader at sector 64 (32 KiB), u-boot.itb at sector 16384 (8 MiB);
# the first partition starts after them, at 16 MiB.
BOARD_FIRST_PARTITION_MIB=16
BOARD_VENDOR_REQUIRED=(Image rk3588-rock-5b.dtb librknnrt.so)
BOARD_WHEEL_EXTRAS=(rknn-toolkit-lite2)
IDBLOADER_SECTOR=64
UBOOT_ITB_SECTOR=16384
SECTOR=512

# Fails with the list of every missing file, before any slow stage runs.
board_check_vendor() {
    local dir=$1 missing=() f
    [[ -n $dir ]] || die "board rock5b needs --vendor-dir DIR holding: ${BOARD_VENDOR_REQUIRED[*]} and u-boot-rockchip.bin (or idbloader.img + u-boot.itb); see docs/flash.md"
    [[ -d $dir ]] || die "--vendor-dir $dir: no such directory"
    for f in "${BOARD_VENDOR_REQUIRED[@]}"; do
        [[ -s $dir/$f ]] || missing+=("$f")
    done
    if [[ ! -s $dir/u-boot-rockchip.bin ]] && [[ ! -s $dir/idbloader.img || ! -s $dir/u-boot.itb ]]; then
        missing+=("u-boot-rockchip.bin (or idbloader.img + u-boot.itb)")
    fi
    if ((${#missing[@]})); then
        local list
        list=$(printf '  - %s\n' "${missing[@]}")
        die "--vendor-dir $dir lacks files the rock5b image needs:
$list
see docs/flash.md (\"Vendor files for the ROCK 5B\") for where to get them"
    fi
    log "vendor files present in $dir"
}

board_boot_files() {
    local rootfs=$1 boot=$2 vendor=$VENDOR_DIR
    mkdir -p "$boot/extlinux"
    cp "$vendor/Image" "$boot/Image"
    cp "$vendor/rk3588-rock-5b.dtb" "$boot/rk3588-rock-5b.dtb"
    {
        printf 'default appliance\ntimeout 1\nlabel appliance\n'
        printf '    menu label edge-appliance %s\n' "$APPLIANCE_VERSION"
        printf '    kernel /Image\n    fdt /rk3588-rock-5b.dtb\n'
        if [[ -s $vendor/initrd.img ]]; then
            cp "$vendor/initrd.img" "$boot/initrd.img"
            printf '    initrd /initrd.img\n'
        fi
        printf '    append %s\n' "$(board_cmdline)"
    } >"$boot/extlinux/extlinux.conf"
    install -D -m 0644 "$vendor/librknnrt.so" "$rootfs/usr/lib/librknnrt.so"
    if [[ -d $vendor/modules ]]; then
        mkdir -p "$rootfs/lib/modules"
        cp -a "$vendor/modules/." "$rootfs/lib/modules/"
        log "kernel modules from $vendor/modules: $(ls "$vendor/modules")"
    fi
}

board_cmdline() {
    echo "root=PARTUUID=$ROOT_PART_UUID rootfstype=ext4 rootwait ro console=$BOARD_CONSOLE console=tty1 panic=10"
}

# _boot_loader_write FILE SECTOR LIMIT IMAGE: raw write of FILE at SECTOR, refusing to reach sector LIMIT
_boot_loader_write() {
    local file=$1 sector=$2 limit=$3 image=$4 end
    end=$((sector + ($(stat -c %s "$file") + SECTOR - 1) / SECTOR))
    ((end <= limit)) || die "$(basename "$file") would end at sector $end, past sector $limit"
    dd if="$file" of="$image" bs=$SECTOR seek="$sector" conv=notrunc status=none
    log "$(basename "$file") written at sector $sector ($((sector * SECTOR / 1024)) KiB)"
}

# u-boot into the gap before the first partition, where the RK3588 boot ROM looks for it
board_write_bootloader() {
    local image=$1 vendor=$VENDOR_DIR first=$((BOARD_FIRST_PARTITION_MIB * 2048))
    if [[ -s $vendor/u-boot-rockchip.bin ]]; then
        _boot_loader_write "$vendor/u-boot-rockchip.bin" $IDBLOADER_SECTOR "$first" "$image"
    else
        _boot_loader_write "$vendor/idbloader.img" $IDBLOADER_SECTOR $UBOOT_ITB_SECTOR "$image"
        _boot_loader_write "$vendor/u-boot.itb" $UBOOT_ITB_SECTOR "$first" "$image"
    fi
}
