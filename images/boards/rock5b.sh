# shellcheck shell=bash
# shellcheck disable=SC2034  # read by build_image.sh, which sources this profile
# Board profile: Radxa ROCK 5B (RK3588). Kernel, device tree, u-boot and the NPU runtime come from
# --vendor-dir (see docs/flash.md for where to get them). u-boot's distro boot runs boot.scr from the
# boot partition (GPT attribute LegacyBIOSBootable): RAUC's U-Boot backend (BOOT_ORDER,
# BOOT_A_LEFT/BOOT_B_LEFT in the u-boot environment, written from Linux with fw_setenv) picks the
# slot; the slot's kernel and device tree are loaded from its own /boot; the kernel mounts
# root=PARTUUID= itself. The u-boot environment's location is /etc/fw_env.config (vendor-dir
# fw_env.config overrides the default, see docs/flash.md).

BOARD_DESCRIPTION="Radxa ROCK 5B (RK3588), vendor kernel + u-boot, NPU runtime"
BOARD_PACKAGES=(libubootenv-tool)
BOARD_INITRAMFS_MODULES=""
BOARD_CONSOLE="ttyS2,1500000"
BOARD_BACKENDS='"rknn", "litert"'
BOARD_RUNTIME_WATCHDOG="30s"
# Rockchip boot ROM: idbloader at sector 64 (32 KiB), u-boot.itb at sector 16384 (8 MiB);
# the first partition starts after them, at 16 MiB.
BOARD_FIRST_PARTITION_MIB=16
BOARD_VENDOR_REQUIRED=(Image rk3588-rock-5b.dtb librknnrt.so)
BOARD_WHEEL_EXTRAS=(rknn-toolkit-lite2)
BOARD_BOOTLOADER=uboot
BOARD_SLOT_A_DEVICE=/dev/disk/by-partuuid/$ROOT_A_PART_UUID
BOARD_SLOT_B_DEVICE=/dev/disk/by-partuuid/$ROOT_B_PART_UUID
BOARD_BOOT_ATTEMPTS=3
# Radxa's RK3588 u-boot keeps its environment on the boot medium at 0x3f8000, 32 KiB (CONFIG_ENV_*)
BOARD_FW_ENV="/dev/mmcblk1 0x3f8000 0x8000"
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

# board_prepare_rootfs ROOTFS: the vendor kernel, device tree and modules go into the slot's /boot
# (u-boot loads them from the slot it boots, so a kernel update arrives with the rootfs)
board_prepare_rootfs() {
    local rootfs=$1 vendor=$VENDOR_DIR
    install -D -m 0644 "$vendor/Image" "$rootfs/boot/Image"
    install -D -m 0644 "$vendor/rk3588-rock-5b.dtb" "$rootfs/boot/rk3588-rock-5b.dtb"
    install -D -m 0644 "$vendor/librknnrt.so" "$rootfs/usr/lib/librknnrt.so"
    if [[ -d $vendor/modules ]]; then
        mkdir -p "$rootfs/lib/modules"
        cp -a "$vendor/modules/." "$rootfs/lib/modules/"
        log "kernel modules from $vendor/modules: $(ls "$vendor/modules")"
    fi
    if [[ -s $vendor/fw_env.config ]]; then
        install -m 0644 "$vendor/fw_env.config" "$rootfs/etc/fw_env.config"
    else
        printf '# u-boot environment (fw_printenv/fw_setenv, RAUC): device offset size\n%s\n' \
            "$BOARD_FW_ENV" >"$rootfs/etc/fw_env.config"
    fi
}

# board_boot_files ROOTFS BOOTDIR: boot.scr (the A/B choice) on the boot partition
board_boot_files() {
    local rootfs=$1 boot=$2
    command -v mkimage >/dev/null || die "mkimage missing: apt-get install u-boot-tools"
    sed -e "s|@CMDLINE@|$(board_cmdline)|" -e "s|@ATTEMPTS@|$BOARD_BOOT_ATTEMPTS|" \
        -e "s|@PART_A@|$ROOT_A_PART_UUID|" -e "s|@PART_B@|$ROOT_B_PART_UUID|" \
        -e "s|@VERSION@|$APPLIANCE_VERSION|" "$IMAGES/boot/boot.cmd" >"$boot/boot.cmd"
    mkimage -A arm64 -T script -C none -n "edge-appliance A/B" -d "$boot/boot.cmd" "$boot/boot.scr" >/dev/null ||
        die "mkimage of boot.scr failed"
    if [[ -s $VENDOR_DIR/initrd.img ]]; then
        warn "rock5b: initrd.img from the vendor dir is not used (the kernel mounts root=PARTUUID= itself)"
    fi
}

# the slot-independent part; boot.scr appends root=PARTUUID=, rauc.slot=
board_cmdline() {
    echo "rootfstype=ext4 rootwait rw rootflags=noatime,commit=60,errors=remount-ro console=$BOARD_CONSOLE console=tty1 panic=10"
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
